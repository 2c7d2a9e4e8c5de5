package mgmt

import (
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	"metropolis.dev/metropolis/proto/api"
	"metropolis.dev/osbase/logtree"
)

// recordingPower stands in for the machine's power control, which a test
// cannot use: it records what it was asked to do.
type recordingPower struct {
	mu    sync.Mutex
	asked []string
}

func (p *recordingPower) Reboot() error   { return p.record("reboot") }
func (p *recordingPower) PowerOff() error { return p.record("power off") }

func (p *recordingPower) record(what string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.asked = append(p.asked, what)
	return nil
}

func (p *recordingPower) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.asked...)
}

func TestReboot(t *testing.T) {
	for _, tc := range []struct {
		name     string
		typ      api.RebootRequest_Type
		noPower  bool
		asNode   bool
		want     codes.Code
		wantDone string
	}{
		{name: "restart", typ: api.RebootRequest_TYPE_FIRMWARE, want: codes.OK, wantDone: "reboot"},
		{name: "power off", typ: api.RebootRequest_TYPE_POWER_OFF, want: codes.OK, wantDone: "power off"},
		{name: "no type", typ: api.RebootRequest_TYPE_INVALID, want: codes.InvalidArgument},
		{name: "unknown type", typ: 42, want: codes.InvalidArgument},
		{name: "no power control", typ: api.RebootRequest_TYPE_FIRMWARE, noPower: true, want: codes.Unimplemented},
		{name: "another node may not", typ: api.RebootRequest_TYPE_FIRMWARE, asNode: true, want: codes.PermissionDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			power := &recordingPower{}
			svc := &Service{LogTree: logtree.New(), Power: power}
			if tc.noPower {
				svc.Power = nil
			}
			addr, c := serve(t, svc)
			cert := c.user(t, "owner")
			if tc.asNode {
				cert = c.certificate(t, identity.NodeCertificate)
			}
			client := dial(t, addr, rpc.NewAuthenticatedCredentials(cert, rpc.WantRemoteCluster(c.ca)))
			_, err := client.Reboot(t.Context(), &api.RebootRequest{Type: tc.typ})
			if status.Code(err) != tc.want {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			got := power.requests()
			switch {
			case tc.wantDone == "" && len(got) > 0:
				t.Errorf("the node was asked to %v, want nothing done", got)
			case tc.wantDone != "" && (len(got) != 1 || got[0] != tc.wantDone):
				t.Errorf("the node was asked to %v, want %q once", got, tc.wantDone)
			}
		})
	}
}
