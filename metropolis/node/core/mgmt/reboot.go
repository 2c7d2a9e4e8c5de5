package mgmt

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"metropolis.dev/metropolis/proto/api"
)

// Power restarts or turns off the node. Both methods only ask: the node
// stops its services gracefully first, which lets the reply reach the
// caller.
type Power interface {
	Reboot() error
	PowerOff() error
}

// Reboot implements NodeManagement.Reboot. Who asked is logged by the
// server's security layer (package rpc), like every call.
func (s *Service) Reboot(ctx context.Context, req *api.RebootRequest) (*api.RebootResponse, error) {
	var do func() error
	var what string
	switch req.GetType() {
	case api.RebootRequest_TYPE_FIRMWARE:
		what = "restart"
		if s.Power != nil {
			do = s.Power.Reboot
		}
	case api.RebootRequest_TYPE_POWER_OFF:
		what = "power off"
		if s.Power != nil {
			do = s.Power.PowerOff
		}
	default:
		return nil, status.Errorf(codes.InvalidArgument, "type: %v is not a way to reboot; use TYPE_FIRMWARE or TYPE_POWER_OFF", req.GetType())
	}
	if do == nil {
		return nil, status.Errorf(codes.Unimplemented, "this node cannot %s on request", what)
	}
	if err := do(); err != nil {
		return nil, status.Errorf(codes.Internal, "cannot %s: %v", what, err)
	}
	return &api.RebootResponse{}, nil
}
