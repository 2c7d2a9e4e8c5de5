package rpc

import (
	"slices"
	"strings"

	epb "metropolis.dev/metropolis/proto/ext"
)

// Permissions is a set of permissions: those an identity holds, or those a
// method needs.
type Permissions map[epb.Permission]bool

// NewPermissions returns the set of the given permissions.
func NewPermissions(perms ...epb.Permission) Permissions {
	p := make(Permissions, len(perms))
	for _, perm := range perms {
		p[perm] = true
	}
	return p
}

// sorted returns the permissions in the set in a stable order, for messages.
func (p Permissions) sorted() []epb.Permission {
	var perms []epb.Permission
	for perm, ok := range p {
		if ok {
			perms = append(perms, perm)
		}
	}
	slices.Sort(perms)
	return perms
}

func (p Permissions) String() string {
	names := make([]string, 0, len(p))
	for _, perm := range p.sorted() {
		names = append(names, perm.String())
	}
	return strings.Join(names, ", ")
}

// NodePermissions returns the permissions every node of the cluster holds:
// reading the cluster's state and reporting on itself. Whatever a node does
// beyond that it does through the roles the cluster gives it.
func NodePermissions() Permissions {
	return NewPermissions(
		epb.Permission_PERMISSION_READ_CLUSTER_STATUS,
		epb.Permission_PERMISSION_UPDATE_NODE_SELF,
	)
}

// ownerIdentity is the user who owns the cluster from its bootstrap on.
const ownerIdentity = "owner"

// DefaultUserPermissions returns the permissions of a user as long as the
// cluster has no finer-grained policy: the owner may do everything, anybody
// else nothing.
func DefaultUserPermissions(identity string) Permissions {
	if identity != ownerIdentity {
		return Permissions{}
	}
	return allPermissions()
}

// allPermissions returns every permission the API defines.
func allPermissions() Permissions {
	values := epb.Permission(0).Descriptor().Values()
	p := make(Permissions, values.Len())
	for i := range values.Len() {
		if perm := epb.Permission(values.Get(i).Number()); perm != epb.Permission_PERMISSION_UNSPECIFIED {
			p[perm] = true
		}
	}
	return p
}
