package forward

import (
	"container/list"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// maxCacheTTL caps how long any answer is cached, whatever its TTL, so
// that a mistaken TTL upstream does not pin an answer for days.
const maxCacheTTL = time.Hour

// cacheKey identifies the answers that can stand in for each other: same
// question, and same DNSSEC flags, which change what an answer holds.
type cacheKey struct {
	name          string
	qtype, qclass uint16
	do, cd        bool
}

func keyFor(q *dns.Msg) cacheKey {
	k := cacheKey{
		name:   strings.ToLower(q.Question[0].Name),
		qtype:  q.Question[0].Qtype,
		qclass: q.Question[0].Qclass,
		cd:     q.CheckingDisabled,
	}
	if opt := q.IsEdns0(); opt != nil {
		k.do = opt.Do()
	}
	return k
}

type cacheEntry struct {
	key     cacheKey
	msg     *dns.Msg
	stored  time.Time
	expires time.Time
}

// cache holds answers until their TTL runs out, and at most size of them:
// when full, the least recently used answer makes room. It is not safe for
// concurrent use.
type cache struct {
	size    int
	entries map[cacheKey]*list.Element
	// lru is ordered from most to least recently used.
	lru list.List
}

func newCache(size int) *cache {
	return &cache{size: size, entries: make(map[cacheKey]*list.Element)}
}

// get returns a copy of the cached answer for k with its TTLs counted down
// to now, or nil.
func (c *cache) get(k cacheKey, now time.Time) *dns.Msg {
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.entries, k)
		return nil
	}
	c.lru.MoveToFront(el)
	msg := e.msg.Copy()
	age := uint32(now.Sub(e.stored) / time.Second)
	forEachRR(msg, func(rr dns.RR) {
		h := rr.Header()
		h.Ttl -= min(age, h.Ttl)
	})
	return msg
}

// put caches msg as the answer for k, if it may be cached at all.
func (c *cache) put(k cacheKey, msg *dns.Msg, now time.Time) {
	ttl := cacheTTL(msg)
	if ttl <= 0 || c.size <= 0 {
		return
	}
	e := &cacheEntry{key: k, msg: msg.Copy(), stored: now, expires: now.Add(ttl)}
	if el, ok := c.entries[k]; ok {
		el.Value = e
		c.lru.MoveToFront(el)
		return
	}
	if c.lru.Len() >= c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.entries, oldest.Value.(*cacheEntry).key)
	}
	c.entries[k] = c.lru.PushFront(e)
}

func (c *cache) len() int { return c.lru.Len() }

// cacheTTL returns how long msg may be cached: the lowest TTL of its
// records for answers, the SOA's negative TTL for NXDOMAIN and empty
// answers (RFC 2308), and zero, meaning not at all, for failures,
// truncated answers and negative answers without SOA.
func cacheTTL(msg *dns.Msg) time.Duration {
	if msg.Truncated {
		return 0
	}
	negative := msg.Rcode == dns.RcodeNameError || (msg.Rcode == dns.RcodeSuccess && len(msg.Answer) == 0)
	if msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
		return 0
	}
	var ttl uint32
	found := false
	if negative {
		for _, rr := range msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
				break
			}
		}
	} else {
		forEachRR(msg, func(rr dns.RR) {
			if !found || rr.Header().Ttl < ttl {
				ttl, found = rr.Header().Ttl, true
			}
		})
	}
	if !found {
		return 0
	}
	return min(time.Duration(ttl)*time.Second, maxCacheTTL)
}

// forEachRR calls fn for every resource record of msg, leaving out the OPT
// pseudo-record, whose TTL field holds flags.
func forEachRR(msg *dns.Msg, fn func(dns.RR)) {
	for _, section := range [][]dns.RR{msg.Answer, msg.Ns, msg.Extra} {
		for _, rr := range section {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			fn(rr)
		}
	}
}
