package mgmt

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/logtree"
	lpb "metropolis.dev/osbase/logtree/proto"
)

// testCluster is a cluster CA made for a test, which issues certificates
// of the shapes identity defines.
type testCluster struct {
	ca     *x509.Certificate
	caKey  ed25519.PrivateKey
	serial int64
}

func newTestCluster(t *testing.T) *testCluster {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{caKey: priv}
	tmpl := identity.CACertificate()
	c.ca, err = x509.ParseCertificate(c.issue(t, tmpl, pub, &tmpl, priv))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// issue signs tmpl for pub by parent's key, returning the DER certificate.
func (c *testCluster) issue(t *testing.T, tmpl x509.Certificate, pub ed25519.PublicKey, parent *x509.Certificate, key ed25519.PrivateKey) []byte {
	t.Helper()
	c.serial++
	tmpl.SerialNumber = big.NewInt(c.serial)
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// certificate issues a certificate of the shape template gives, for a new
// key.
func (c *testCluster) certificate(t *testing.T, template func(ed25519.PublicKey) x509.Certificate) tls.Certificate {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.issue(t, template(pub), pub, c.ca, c.caKey)}, PrivateKey: priv}
}

func (c *testCluster) user(t *testing.T, name string) tls.Certificate {
	return c.certificate(t, func(ed25519.PublicKey) x509.Certificate { return identity.UserCertificate(name) })
}

// serve runs svc on localhost the way a node serves it: with the node's
// certificate, callers authenticated and authorized by rpc.ServerSecurity.
// It returns the server's address and the cluster whose CA issued its
// certificate.
func serve(t *testing.T, svc *Service) (string, *testCluster) {
	t.Helper()
	c := newTestCluster(t)
	node := c.certificate(t, identity.NodeCertificate)
	creds, err := identity.NewNodeCredentials(node.PrivateKey.(ed25519.PrivateKey), node.Certificate[0], c.ca.Raw)
	if err != nil {
		t.Fatal(err)
	}
	security := &rpc.ServerSecurity{NodeCredentials: creds}
	srv := grpc.NewServer(security.GRPCOptions(nil)...)
	svc.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), c
}

// dial returns a client of the service at addr with creds.
func dial(t *testing.T, addr string, creds credentials.TransportCredentials) api.NodeManagementClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return api.NewNodeManagementClient(conn)
}

// serveToOwner serves lt and returns a client authenticated as the
// cluster's owner, who may read logs.
func serveToOwner(t *testing.T, lt *logtree.LogTree) api.NodeManagementClient {
	t.Helper()
	addr, c := serve(t, &Service{LogTree: lt})
	return dial(t, addr, rpc.NewAuthenticatedCredentials(c.user(t, "owner"), rpc.WantRemoteCluster(c.ca)))
}

// backlog sends req, which must not stream, and returns the entries of
// each response.
func backlog(t *testing.T, c api.NodeManagementClient, req *api.GetLogsRequest) [][]*lpb.LogEntry {
	t.Helper()
	stream, err := c.Logs(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	var chunks [][]*lpb.LogEntry
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return chunks
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(res.StreamEntries) > 0 {
			t.Fatalf("got stream entries without asking for them: %v", res.StreamEntries)
		}
		chunks = append(chunks, res.BacklogEntries)
	}
}

func flatten(chunks [][]*lpb.LogEntry) []*lpb.LogEntry {
	var all []*lpb.LogEntry
	for _, c := range chunks {
		all = append(all, c...)
	}
	return all
}

// text returns what an entry says.
func text(e *lpb.LogEntry) string {
	if r := e.GetRaw(); r != nil {
		return r.Data
	}
	return strings.Join(e.GetLeveled().GetLines(), "\n")
}

func texts(entries []*lpb.LogEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.Dn+": "+text(e))
	}
	return out
}

func withChildren() *cpb.LogFilter {
	return &cpb.LogFilter{Filter: &cpb.LogFilter_WithChildren_{WithChildren: &cpb.LogFilter_WithChildren{}}}
}

func TestLogsBacklog(t *testing.T) {
	lt := logtree.New()
	// More entries than fit in one chunk, spread over DNs (each DN keeps
	// at most 1024) so that the merged backlog has them all.
	const perDN, dns = 900, 5
	for i := range perDN {
		for d := range dns {
			lt.MustLeveledFor(logtree.DN(fmt.Sprintf("root.svc%d", d))).Infof("entry %d", i*dns+d)
		}
	}
	c := serveToOwner(t, lt)

	chunks := backlog(t, c, &api.GetLogsRequest{
		Dn:          "root",
		Filters:     []*cpb.LogFilter{withChildren()},
		BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
		StreamMode:  api.GetLogsRequest_STREAM_MODE_DISABLE,
	})
	var sizes []int
	for _, ch := range chunks {
		sizes = append(sizes, len(ch))
	}
	if fmt.Sprint(sizes) != "[2000 2000 500]" {
		t.Errorf("chunk sizes %v, want [2000 2000 500]", sizes)
	}
	all := flatten(chunks)
	for i, e := range all {
		if want := fmt.Sprintf("entry %d", i); text(e) != want {
			t.Fatalf("entry %d says %q, want %q: entries out of order", i, text(e), want)
		}
	}

	// COUNT returns the newest entries.
	all = flatten(backlog(t, c, &api.GetLogsRequest{
		Dn:           "root",
		Filters:      []*cpb.LogFilter{withChildren()},
		BacklogMode:  api.GetLogsRequest_BACKLOG_MODE_COUNT,
		BacklogCount: 3,
		StreamMode:   api.GetLogsRequest_STREAM_MODE_DISABLE,
	}))
	if got := fmt.Sprint(texts(all)); got != "[root.svc2: entry 4497 root.svc3: entry 4498 root.svc4: entry 4499]" {
		t.Errorf("got %s, want the last three entries", got)
	}

	// Without children, only the DN itself; a DN that never logged is
	// empty, not an error.
	if got := len(flatten(backlog(t, c, &api.GetLogsRequest{Dn: "root.svc1", BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL, StreamMode: api.GetLogsRequest_STREAM_MODE_DISABLE}))); got != perDN {
		t.Errorf("root.svc1 alone: %d entries, want %d", got, perDN)
	}
	if got := flatten(backlog(t, c, &api.GetLogsRequest{Dn: "root", BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL, StreamMode: api.GetLogsRequest_STREAM_MODE_DISABLE})); len(got) != 0 {
		t.Errorf("root alone: got %v, want nothing", texts(got))
	}
}

func TestLogsStream(t *testing.T) {
	lt := logtree.New()
	// Two chunks of backlog.
	const old = 2700
	for i := range old {
		lt.MustLeveledFor(logtree.DN(fmt.Sprintf("root.svc%d", i%3))).Infof("old %d", i)
	}
	c := serveToOwner(t, lt)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := c.Logs(ctx, &api.GetLogsRequest{
		Dn:          "root",
		Filters:     []*cpb.LogFilter{withChildren()},
		BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
		StreamMode:  api.GetLogsRequest_STREAM_MODE_UNBUFFERED,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Once the first response shows that the server has read the tree,
	// log new entries while the rest of the backlog is being sent.
	var backlogged, streamed []string
	for len(streamed) < 50 {
		res, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d backlog and %d stream entries: %v", len(backlogged), len(streamed), err)
		}
		if len(backlogged) == 0 {
			go func() {
				for i := range 50 {
					lt.MustRawFor("root.proc").Write([]byte(fmt.Sprintf("new %d\n", i)))
				}
			}()
		}
		if len(res.BacklogEntries) > 0 && len(streamed) > 0 {
			t.Fatal("backlog entries after stream entries")
		}
		if len(res.BacklogEntries) > 0 && len(res.StreamEntries) > 0 {
			t.Fatal("a response with both backlog and stream entries")
		}
		for _, e := range res.BacklogEntries {
			backlogged = append(backlogged, text(e))
		}
		for _, e := range res.StreamEntries {
			streamed = append(streamed, text(e))
		}
	}
	if len(backlogged) != old || backlogged[old-1] != fmt.Sprintf("old %d", old-1) {
		t.Errorf("backlog of %d entries ending in %q, want %d ending in old %d", len(backlogged), backlogged[len(backlogged)-1], old, old-1)
	}
	for i, s := range streamed {
		if want := fmt.Sprintf("new %d", i); s != want {
			t.Fatalf("stream entry %d is %q, want %q", i, s, want)
		}
	}
}

func TestLogsFilters(t *testing.T) {
	lt := logtree.New()
	lt.MustLeveledFor("root.svc").Info("info")
	lt.MustLeveledFor("root.svc").Warning("warning")
	lt.MustRawFor("root.svc").Write([]byte("raw\n"))
	lt.MustLeveledFor("root.svc.child").Error("error")
	c := serveToOwner(t, lt)

	severity := func(s lpb.Severity) *cpb.LogFilter {
		return &cpb.LogFilter{Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
			LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{Minimum: s},
		}}
	}
	onlyRaw := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyRaw_{OnlyRaw: &cpb.LogFilter_OnlyRaw{}}}
	onlyLeveled := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyLeveled_{OnlyLeveled: &cpb.LogFilter_OnlyLeveled{}}}
	for _, tc := range []struct {
		name    string
		filters []*cpb.LogFilter
		want    string
	}{
		{"none", nil, "[root.svc: info root.svc: warning root.svc: raw]"},
		{"with children", []*cpb.LogFilter{withChildren()}, "[root.svc: info root.svc: warning root.svc: raw root.svc.child: error]"},
		{"only raw", []*cpb.LogFilter{withChildren(), onlyRaw}, "[root.svc: raw]"},
		{"only leveled", []*cpb.LogFilter{withChildren(), onlyLeveled}, "[root.svc: info root.svc: warning root.svc.child: error]"},
		{"minimum severity drops raw", []*cpb.LogFilter{withChildren(), severity(lpb.Severity_WARNING)}, "[root.svc: warning root.svc.child: error]"},
		{"strictest minimum", []*cpb.LogFilter{withChildren(), severity(lpb.Severity_ERROR), severity(lpb.Severity_INFO)}, "[root.svc.child: error]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := texts(flatten(backlog(t, c, &api.GetLogsRequest{
				Dn:          "root.svc",
				Filters:     tc.filters,
				BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
				StreamMode:  api.GetLogsRequest_STREAM_MODE_DISABLE,
			})))
			if fmt.Sprint(got) != tc.want {
				t.Errorf("got %v, want %s", got, tc.want)
			}
		})
	}
}

func TestLogsInvalidArguments(t *testing.T) {
	c := serveToOwner(t, logtree.New())
	valid := func() *api.GetLogsRequest {
		return &api.GetLogsRequest{
			Dn:          "root",
			BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
			StreamMode:  api.GetLogsRequest_STREAM_MODE_DISABLE,
		}
	}
	onlyRaw := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyRaw_{OnlyRaw: &cpb.LogFilter_OnlyRaw{}}}
	onlyLeveled := &cpb.LogFilter{Filter: &cpb.LogFilter_OnlyLeveled_{OnlyLeveled: &cpb.LogFilter_OnlyLeveled{}}}
	for _, tc := range []struct {
		name   string
		modify func(r *api.GetLogsRequest)
		want   string
	}{
		{"bad dn", func(r *api.GetLogsRequest) { r.Dn = "root..svc" }, "dn: invalid DN"},
		{"trailing dot", func(r *api.GetLogsRequest) { r.Dn = "root." }, "dn: invalid DN"},
		{"no backlog mode", func(r *api.GetLogsRequest) { r.BacklogMode = api.GetLogsRequest_BACKLOG_MODE_INVALID }, "backlog_mode"},
		{"zero count", func(r *api.GetLogsRequest) { r.BacklogMode = api.GetLogsRequest_BACKLOG_MODE_COUNT }, "backlog_count is 0"},
		{"negative count", func(r *api.GetLogsRequest) {
			r.BacklogMode = api.GetLogsRequest_BACKLOG_MODE_COUNT
			r.BacklogCount = -5
		}, "backlog_count is -5"},
		{"no stream mode", func(r *api.GetLogsRequest) { r.StreamMode = api.GetLogsRequest_STREAM_MODE_INVALID }, "stream_mode"},
		{"too many filters", func(r *api.GetLogsRequest) {
			for range 11 {
				r.Filters = append(r.Filters, withChildren())
			}
		}, "11 filters, at most 10"},
		{"raw and leveled", func(r *api.GetLogsRequest) { r.Filters = []*cpb.LogFilter{onlyRaw, onlyLeveled} }, "only_raw and only_leveled"},
		{"raw and severity", func(r *api.GetLogsRequest) {
			r.Filters = []*cpb.LogFilter{onlyRaw, {Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
				LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{Minimum: lpb.Severity_ERROR},
			}}}
		}, "only_raw and leveled_with_minimum_severity"},
		{"invalid severity", func(r *api.GetLogsRequest) {
			r.Filters = []*cpb.LogFilter{{Filter: &cpb.LogFilter_LeveledWithMinimumSeverity_{
				LeveledWithMinimumSeverity: &cpb.LogFilter_LeveledWithMinimumSeverity{},
			}}}
		}, "filter 0: invalid minimum severity"},
		{"empty filter", func(r *api.GetLogsRequest) { r.Filters = []*cpb.LogFilter{withChildren(), {}} }, "filter 1 is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := valid()
			tc.modify(req)
			stream, err := c.Logs(t.Context(), req)
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
	// Ten filters are fine.
	req := valid()
	for range 10 {
		req.Filters = append(req.Filters, withChildren())
	}
	backlog(t, c, req)
}

// TestLogsInvalidUTF8 logs a line that is not UTF-8, as a process may
// write, which a proto string cannot carry.
func TestLogsInvalidUTF8(t *testing.T) {
	lt := logtree.New()
	lt.MustRawFor("root.proc").Write([]byte("bad \xff\xfe byte\n"))
	lt.MustLeveledFor("root.proc").Infof("bad %s", "\xc3")
	c := serveToOwner(t, lt)
	got := flatten(backlog(t, c, &api.GetLogsRequest{
		Dn:          "root.proc",
		BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
		StreamMode:  api.GetLogsRequest_STREAM_MODE_DISABLE,
	}))
	if len(got) != 2 {
		t.Fatalf("got %d entries, want 2", len(got))
	}
	if r := got[0].GetRaw(); r.GetData() != "bad \ufffd byte" || r.GetOriginalLength() != 11 {
		t.Errorf("raw entry %q (original length %d), want the invalid bytes replaced and length 11", r.GetData(), r.GetOriginalLength())
	}
	if s := text(got[1]); s != "bad \ufffd" {
		t.Errorf("leveled entry %q, want the invalid byte replaced", s)
	}
}

// TestLogsAuthorization checks that only callers with READ_NODE_LOGS read
// logs: other nodes and users without the permission are refused, and so
// is a caller outside the cluster.
func TestLogsAuthorization(t *testing.T) {
	lt := logtree.New()
	lt.MustLeveledFor("root").Info("secret")
	addr, c := serve(t, &Service{LogTree: lt})
	req := &api.GetLogsRequest{
		Dn:          "root",
		BacklogMode: api.GetLogsRequest_BACKLOG_MODE_ALL,
		StreamMode:  api.GetLogsRequest_STREAM_MODE_DISABLE,
	}
	_, stranger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ephemeral, err := rpc.NewEphemeralCredentials(stranger, rpc.WantRemoteCluster(c.ca))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		creds credentials.TransportCredentials
		want  codes.Code
	}{
		{"owner", rpc.NewAuthenticatedCredentials(c.user(t, "owner"), rpc.WantRemoteCluster(c.ca)), codes.OK},
		{"other user", rpc.NewAuthenticatedCredentials(c.user(t, "alice"), rpc.WantRemoteCluster(c.ca)), codes.PermissionDenied},
		{"node", rpc.NewAuthenticatedCredentials(c.certificate(t, identity.NodeCertificate), rpc.WantRemoteCluster(c.ca)), codes.PermissionDenied},
		{"not in the cluster", ephemeral, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := dial(t, addr, tc.creds).Logs(t.Context(), req)
			var res *api.GetLogsResponse
			if err == nil {
				res, err = stream.Recv()
			}
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == codes.OK && (len(res.BacklogEntries) != 1 || text(res.BacklogEntries[0]) != "secret") {
				t.Errorf("got %v, want the one entry", res)
			}
		})
	}
}
