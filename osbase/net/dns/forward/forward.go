// Package forward is a caching DNS forwarder: a handler for the server of
// metropolis.dev/osbase/net/dns that answers queries by asking upstream
// recursive resolvers, such as those a DHCP server names, and remembers the
// answers for as long as their TTLs allow.
//
// It is deliberately small. Upstreams are asked in order, over UDP, and over
// TCP when a UDP answer comes back truncated; the next upstream is asked
// when one fails to answer or answers SERVFAIL or REFUSED. Answers and
// negative answers (RFC 2308) are cached, in a cache of bounded size that
// evicts the least recently used answer. Failures are never cached, so a
// resolver that comes back is used at once. When there is no upstream, or
// none answers, clients get SERVFAIL with an extended DNS error (RFC 8914)
// saying why, if they speak EDNS.
package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Defaults of Config.
const (
	DefaultCacheSize = 1000
	DefaultTimeout   = 2 * time.Second
)

// udpSize is the EDNS UDP payload size the forwarder uses with upstreams
// and announces to clients: the size that avoids IP fragmentation on any
// common path (DNS flag day 2020).
const udpSize = 1232

// Config configures a Forwarder.
type Config struct {
	// CacheSize is how many answers the cache holds at most. Zero means
	// DefaultCacheSize; a negative size disables the cache.
	CacheSize int
	// Timeout is how long to wait for one upstream's answer, per
	// transport. Zero means DefaultTimeout.
	Timeout time.Duration
	// Logger receives a message whenever an upstream starts or stops
	// failing. Nil means no logging.
	Logger *slog.Logger
}

// Forwarder is a dns.Handler answering queries through upstream resolvers.
type Forwarder struct {
	udp, tcp *dns.Client
	log      *slog.Logger
	// now is the clock of the cache, replaced in tests.
	now func() time.Time

	mu        sync.Mutex
	upstreams []netip.AddrPort
	// failing remembers which upstreams failed last time, to log changes
	// instead of every failure.
	failing map[netip.AddrPort]bool
	cache   *cache
}

// New returns a forwarder without upstreams; it answers SERVFAIL until
// SetUpstreams is called.
func New(cfg Config) *Forwarder {
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarder{
		udp:     &dns.Client{Net: "udp", Timeout: cfg.Timeout, UDPSize: udpSize},
		tcp:     &dns.Client{Net: "tcp", Timeout: cfg.Timeout},
		log:     log,
		now:     time.Now,
		failing: make(map[netip.AddrPort]bool),
		cache:   newCache(cfg.CacheSize),
	}
}

// SetUpstreams replaces the upstream resolvers, which are asked in the order
// given. A change of upstreams empties the cache, as the new resolvers may
// see a different DNS (another network's private zones, say).
func (f *Forwarder) SetUpstreams(upstreams []netip.AddrPort) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(upstreams, f.upstreams) {
		return
	}
	f.upstreams = slices.Clone(upstreams)
	f.failing = make(map[netip.AddrPort]bool)
	f.cache = newCache(f.cache.size)
}

// ServeDNS answers the query r.
func (f *Forwarder) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	udp := w.LocalAddr().Network() == "udp"
	// Write errors mean the client went away; nothing is left to do.
	_ = w.WriteMsg(f.answer(r, udp))
}

// answer returns the reply to r for a client asking over UDP or TCP.
func (f *Forwarder) answer(r *dns.Msg, udp bool) *dns.Msg {
	if r.Opcode != dns.OpcodeQuery {
		return new(dns.Msg).SetRcode(r, dns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return new(dns.Msg).SetRcodeFormatError(r)
	}
	key := keyFor(r)

	f.mu.Lock()
	cached := f.cache.get(key, f.now())
	upstreams := f.upstreams
	f.mu.Unlock()
	if cached != nil {
		return fitReply(r, cached, udp)
	}
	if len(upstreams) == 0 {
		return failure(r, dns.ExtendedErrorCodeNotReady, "no upstream DNS servers configured")
	}

	q := r.Question[0]
	query := new(dns.Msg)
	query.SetQuestion(q.Name, q.Qtype)
	query.Question[0].Qclass = q.Qclass
	query.CheckingDisabled = r.CheckingDisabled
	query.SetEdns0(udpSize, key.do)

	var errs []error
	var refusal *dns.Msg
	for _, upstream := range upstreams {
		resp, err := f.exchange(query, upstream)
		f.noteHealth(upstream, err)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			// Another upstream may do better; if none does, the client
			// learns what the last one said.
			refusal = resp
			continue
		}
		f.mu.Lock()
		if slices.Equal(f.upstreams, upstreams) {
			f.cache.put(key, resp, f.now())
		}
		f.mu.Unlock()
		return fitReply(r, resp, udp)
	}
	if refusal != nil {
		return fitReply(r, refusal, udp)
	}
	return failure(r, dns.ExtendedErrorCodeNetworkError, fmt.Sprintf("no upstream DNS server answered: %v", errors.Join(errs...)))
}

// exchange asks upstream, over UDP and then over TCP if the UDP answer was
// truncated.
func (f *Forwarder) exchange(query *dns.Msg, upstream netip.AddrPort) (*dns.Msg, error) {
	query = query.Copy()
	query.Id = dns.Id()
	resp, _, err := f.udp.ExchangeContext(context.Background(), query, upstream.String())
	if err == nil && resp.Truncated {
		resp, _, err = f.tcp.ExchangeContext(context.Background(), query, upstream.String())
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", upstream, err)
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, query.Question[0].Name) ||
		resp.Question[0].Qtype != query.Question[0].Qtype || resp.Question[0].Qclass != query.Question[0].Qclass {
		return nil, fmt.Errorf("%v: answer is for another question (%v)", upstream, resp.Question)
	}
	return resp, nil
}

func (f *Forwarder) noteHealth(upstream netip.AddrPort, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	failing := err != nil
	if f.failing[upstream] == failing {
		return
	}
	f.failing[upstream] = failing
	if failing {
		f.log.Warn("Upstream DNS server fails", "upstream", upstream.String(), "error", err)
	} else {
		f.log.Info("Upstream DNS server answers again", "upstream", upstream.String())
	}
}

// fitReply turns an upstream's (or the cache's) resp into the reply to r:
// with r's ID and question as asked, with EDNS only if r used it, and
// truncated to what r's client can take over UDP.
func fitReply(r, resp *dns.Msg, udp bool) *dns.Msg {
	reply := resp.Copy()
	reply.Id = r.Id
	reply.Question = slices.Clone(r.Question)
	reply.Extra = slices.DeleteFunc(reply.Extra, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeOPT })
	clientOpt := r.IsEdns0()
	if clientOpt != nil {
		reply.SetEdns0(udpSize, clientOpt.Do())
	}
	reply.Compress = true
	if udp {
		size := dns.MinMsgSize
		if clientOpt != nil {
			size = int(max(clientOpt.UDPSize(), dns.MinMsgSize))
		}
		reply.Truncate(size)
	}
	return reply
}

// failure returns SERVFAIL for r, saying why in an extended DNS error if
// r's client speaks EDNS.
func failure(r *dns.Msg, code uint16, reason string) *dns.Msg {
	reply := new(dns.Msg).SetRcode(r, dns.RcodeServerFailure)
	reply.RecursionAvailable = true
	if clientOpt := r.IsEdns0(); clientOpt != nil {
		reply.SetEdns0(udpSize, clientOpt.Do())
		opt := reply.IsEdns0()
		opt.Option = append(opt.Option, &dns.EDNS0_EDE{InfoCode: code, ExtraText: reason})
	}
	return reply
}
