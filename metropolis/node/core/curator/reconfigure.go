package curator

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	cpb "metropolis.dev/metropolis/proto/common"
)

// mutableClusterConfigurationPaths are the fields of ClusterConfiguration
// that ConfigureCluster may change. Everything else is fixed at bootstrap:
// changing the domain, TPM mode or storage policy of a running cluster would
// invalidate what its nodes already did under the old values.
var mutableClusterConfigurationPaths = []string{
	"kubernetes.node_labels_to_synchronize",
}

// errReconfigure wraps errors caused by the request to reconfigure rather
// than by the server.
var errReconfigure = errors.New("invalid reconfiguration")

// errReconfigureConflict is returned when the base the caller built its
// change on is no longer current.
var errReconfigureConflict = errors.New("cluster configuration changed since the base configuration was read")

// reconfigureCluster applies a ConfigureCluster request to the current
// configuration. Only the fields named in mask are taken from newConfig.
// If base is set, the fields named in mask must be the same in base and
// current, so that a change built on an outdated read fails instead of
// silently undoing somebody else's change; fields outside the mask may
// differ. current is not modified.
func reconfigureCluster(current, base, newConfig *cpb.ClusterConfiguration, mask *fieldmaskpb.FieldMask) (*cpb.ClusterConfiguration, error) {
	if newConfig == nil {
		return nil, fmt.Errorf("%w: new_config missing", errReconfigure)
	}
	if len(mask.GetPaths()) == 0 {
		return nil, fmt.Errorf("%w: update_mask missing or empty", errReconfigure)
	}
	for _, path := range mask.Paths {
		if !slices.Contains(mutableClusterConfigurationPaths, path) {
			return nil, fmt.Errorf("%w: field %q cannot be changed; changeable are: %s", errReconfigure, path, strings.Join(mutableClusterConfigurationPaths, ", "))
		}
	}
	if base != nil {
		for _, path := range mask.Paths {
			equal, err := fieldsEqual(current, base, path)
			if err != nil {
				return nil, err
			}
			if !equal {
				return nil, fmt.Errorf("%w: field %q differs", errReconfigureConflict, path)
			}
		}
	}
	res := proto.Clone(current).(*cpb.ClusterConfiguration)
	for _, path := range mask.Paths {
		if err := copyField(res, newConfig, path); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// resolvePath walks path (dot-separated field names) through the message
// descriptors starting at m, returning the descriptors of each field.
func resolvePath(m protoreflect.Message, path string) ([]protoreflect.FieldDescriptor, error) {
	desc := m.Descriptor()
	var fields []protoreflect.FieldDescriptor
	names := strings.Split(path, ".")
	for i, name := range names {
		if desc == nil {
			return nil, fmt.Errorf("%w: path %q descends into a non-message field", errReconfigure, path)
		}
		fd := desc.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			return nil, fmt.Errorf("%w: path %q: no field %q", errReconfigure, path, name)
		}
		fields = append(fields, fd)
		desc = nil
		if fd.Message() != nil && !fd.IsList() && !fd.IsMap() {
			desc = fd.Message()
		} else if i != len(names)-1 {
			return nil, fmt.Errorf("%w: path %q descends into a repeated or scalar field", errReconfigure, path)
		}
	}
	return fields, nil
}

// getField returns the value at path in m and whether it is set (every
// message on the way included).
func getField(m protoreflect.Message, fields []protoreflect.FieldDescriptor) (protoreflect.Value, bool) {
	for _, fd := range fields[:len(fields)-1] {
		if !m.Has(fd) {
			return protoreflect.Value{}, false
		}
		m = m.Get(fd).Message()
	}
	last := fields[len(fields)-1]
	return m.Get(last), m.Has(last)
}

// fieldsEqual compares the field at path in a and b.
func fieldsEqual(a, b proto.Message, path string) (bool, error) {
	fields, err := resolvePath(a.ProtoReflect(), path)
	if err != nil {
		return false, err
	}
	va, hasA := getField(a.ProtoReflect(), fields)
	vb, hasB := getField(b.ProtoReflect(), fields)
	if !hasA || !hasB {
		return hasA == hasB, nil
	}
	return va.Equal(vb), nil
}

// copyField sets the field at path in dst to its value in src, clearing it
// if src does not set it. Messages on the way are created in dst as needed.
func copyField(dst, src proto.Message, path string) error {
	fields, err := resolvePath(dst.ProtoReflect(), path)
	if err != nil {
		return err
	}
	value, has := getField(src.ProtoReflect(), fields)
	m := dst.ProtoReflect()
	for _, fd := range fields[:len(fields)-1] {
		if !has && !m.Has(fd) {
			// Nothing to clear below an unset message.
			return nil
		}
		m = m.Mutable(fd).Message()
	}
	last := fields[len(fields)-1]
	if !has {
		m.Clear(last)
		return nil
	}
	// Copy rather than share, so that dst never aliases src.
	switch {
	case last.IsList():
		dstList := m.Mutable(last).List()
		dstList.Truncate(0)
		srcList := value.List()
		for i := 0; i < srcList.Len(); i++ {
			dstList.Append(cloneValue(last, srcList.Get(i)))
		}
	case last.IsMap():
		return fmt.Errorf("%w: path %q: map fields are not supported", errReconfigure, path)
	default:
		m.Set(last, cloneValue(last, value))
	}
	return nil
}

func cloneValue(fd protoreflect.FieldDescriptor, v protoreflect.Value) protoreflect.Value {
	if fd.Message() != nil {
		return protoreflect.ValueOfMessage(proto.Clone(v.Message().Interface()).ProtoReflect())
	}
	return v
}
