package curator

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	cpb "metropolis.dev/metropolis/proto/common"
)

func labelRules(regexps ...string) *cpb.ClusterConfiguration_Kubernetes {
	k := &cpb.ClusterConfiguration_Kubernetes{}
	for _, r := range regexps {
		k.NodeLabelsToSynchronize = append(k.NodeLabelsToSynchronize, &cpb.ClusterConfiguration_Kubernetes_NodeLabelsToSynchronize{Regexp: r})
	}
	return k
}

func TestReconfigureCluster(t *testing.T) {
	current := DefaultClusterConfiguration()
	current.Kubernetes = labelRules("^a$")
	const path = "kubernetes.node_labels_to_synchronize"

	withRules := func(rules ...string) *cpb.ClusterConfiguration {
		c := DefaultClusterConfiguration()
		c.Kubernetes = labelRules(rules...)
		return c
	}

	for _, tc := range []struct {
		name      string
		base, new *cpb.ClusterConfiguration
		paths     []string
		want      *cpb.ClusterConfiguration
		wantErr   error
	}{
		{
			name:  "set without base",
			new:   &cpb.ClusterConfiguration{Kubernetes: labelRules("^b$", "^c$")},
			paths: []string{path},
			want:  withRules("^b$", "^c$"),
		},
		{
			name:  "clear",
			new:   &cpb.ClusterConfiguration{},
			paths: []string{path},
			want:  withRules(),
		},
		{
			name:  "matching base",
			base:  withRules("^a$"),
			new:   &cpb.ClusterConfiguration{Kubernetes: labelRules("^b$")},
			paths: []string{path},
			want:  withRules("^b$"),
		},
		{
			// Fields outside the mask may differ between base and current.
			name:  "base differs outside mask",
			base:  &cpb.ClusterConfiguration{ClusterDomain: "other.internal", Kubernetes: labelRules("^a$")},
			new:   &cpb.ClusterConfiguration{Kubernetes: labelRules("^b$")},
			paths: []string{path},
			want:  withRules("^b$"),
		},
		{
			name:    "outdated base",
			base:    withRules("^x$"),
			new:     &cpb.ClusterConfiguration{Kubernetes: labelRules("^b$")},
			paths:   []string{path},
			wantErr: errReconfigureConflict,
		},
		{
			name:    "immutable field",
			new:     &cpb.ClusterConfiguration{ClusterDomain: "x.internal"},
			paths:   []string{"cluster_domain"},
			wantErr: errReconfigure,
		},
		{
			name:    "parent of mutable field",
			new:     &cpb.ClusterConfiguration{Kubernetes: labelRules("^b$")},
			paths:   []string{"kubernetes"},
			wantErr: errReconfigure,
		},
		{
			name:    "unknown field",
			new:     &cpb.ClusterConfiguration{},
			paths:   []string{"nope"},
			wantErr: errReconfigure,
		},
		{
			name:    "empty mask",
			new:     &cpb.ClusterConfiguration{},
			wantErr: errReconfigure,
		},
		{
			name:    "no new config",
			paths:   []string{path},
			wantErr: errReconfigure,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := proto.Clone(current)
			var mask *fieldmaskpb.FieldMask
			if tc.paths != nil {
				mask = &fieldmaskpb.FieldMask{Paths: tc.paths}
			}
			got, err := reconfigureCluster(current, tc.base, tc.new, mask)
			if !proto.Equal(before, current) {
				t.Errorf("current configuration was modified")
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got error %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("reconfigureCluster: %v", err)
			}
			if !proto.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			// The result must not alias the request.
			if len(tc.new.GetKubernetes().GetNodeLabelsToSynchronize()) > 0 {
				tc.new.Kubernetes.NodeLabelsToSynchronize[0].Regexp = "changed"
				if proto.Equal(got.Kubernetes.NodeLabelsToSynchronize[0], tc.new.Kubernetes.NodeLabelsToSynchronize[0]) {
					t.Errorf("result aliases new_config")
				}
			}
		})
	}
}

func TestCopyFieldGeneric(t *testing.T) {
	// copyField and fieldsEqual work on any path, not only the mutable one.
	dst := &cpb.ClusterConfiguration{}
	src := &cpb.ClusterConfiguration{ClusterDomain: "a.internal", TpmMode: cpb.ClusterConfiguration_TPM_MODE_DISABLED}
	for _, path := range []string{"cluster_domain", "tpm_mode"} {
		if err := copyField(dst, src, path); err != nil {
			t.Fatalf("copyField(%s): %v", path, err)
		}
		if eq, err := fieldsEqual(dst, src, path); err != nil || !eq {
			t.Errorf("fieldsEqual(%s) = %v, %v after copy", path, eq, err)
		}
	}
	if err := copyField(dst, src, "cluster_domain.x"); !errors.Is(err, errReconfigure) {
		t.Errorf("path through scalar: got %v", err)
	}
}
