package rpc

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	epb "metropolis.dev/metropolis/proto/ext"
)

// policy is what a method allows, from its authorization option.
type policy struct {
	// need is the permissions an authenticated caller must hold.
	need Permissions
	// allowUnauthenticated lets anybody call the method; the handler
	// decides what to allow based on the PeerInfo.
	allowUnauthenticated bool
}

// policyCache remembers the policy (or the reason there is none) of each
// method called so far. The protobuf registry does not change once the
// program runs, so neither do the entries.
type policyCache struct {
	entries sync.Map // full method name -> policyEntry
}

type policyEntry struct {
	policy *policy
	err    error
}

// lookup returns the policy of fullMethod ("/package.Service/Method"), or
// an error saying why it has none.
func (c *policyCache) lookup(fullMethod string) (*policy, error) {
	if e, ok := c.entries.Load(fullMethod); ok {
		return e.(policyEntry).policy, e.(policyEntry).err
	}
	p, err := policyOf(fullMethod)
	c.entries.Store(fullMethod, policyEntry{p, err})
	return p, err
}

// policyOf reads the authorization option of fullMethod from the global
// protobuf registry.
func policyOf(fullMethod string) (*policy, error) {
	service, method, ok := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if !ok {
		return nil, fmt.Errorf("malformed method name %q", fullMethod)
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, fmt.Errorf("service %q is not in the protobuf registry: %w", service, err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%q is not a service", service)
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		return nil, fmt.Errorf("service %q has no method %q", service, method)
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok || !proto.HasExtension(opts, epb.E_Authorization) {
		return nil, errors.New("method declares no authorization policy")
	}
	authz := proto.GetExtension(opts, epb.E_Authorization).(*epb.Authorization)
	if authz.GetAllowUnauthenticated() && len(authz.GetNeed()) > 0 {
		// The interceptor cannot demand permissions from callers it lets in
		// without credentials, so such a policy cannot mean what it says.
		return nil, errors.New("method's authorization policy both allows unauthenticated callers and needs permissions")
	}
	return &policy{
		need:                 NewPermissions(authz.GetNeed()...),
		allowUnauthenticated: authz.GetAllowUnauthenticated(),
	}, nil
}
