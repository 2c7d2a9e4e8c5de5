package node

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	cpb "metropolis.dev/metropolis/proto/common"
)

func TestValidateLabelKey(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"rack", true},
		{"Rack_1.a-b", true},
		{"a", true},
		{"example.com/rack", true},
		{"test.monogon.dev/foo", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"-rack", false},
		{"rack-", false},
		{".rack", false},
		{"ra ck", false},
		{"rack/", false},
		{"/rack", false},
		{"Example.com/rack", false},
		{"exa_mple.com/rack", false},
		{"-example.com/rack", false},
		{"a/b/c", false},
		{"ü", false},
		{strings.Repeat("a.", 127) + "a/b", false},
	} {
		err := ValidateLabelKey(tc.key)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLabelKey(%q) = %v, want ok=%v", tc.key, err, tc.ok)
		}
	}
}

func TestValidateLabelValue(t *testing.T) {
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"", true},
		{"bar", true},
		{"1.2.3", true},
		{strings.Repeat("z", 63), true},
		{strings.Repeat("z", 64), false},
		{"_bar", false},
		{"bar.", false},
		{"a/b", false},
		{"a\x00b", false},
	} {
		err := ValidateLabelValue(tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLabelValue(%q) = %v, want ok=%v", tc.value, err, tc.ok)
		}
	}
}

func TestLabels(t *testing.T) {
	in := &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{
		{Key: "b", Value: "2"},
		{Key: "a", Value: "1"},
	}}
	l := LabelsFromProto(in)
	if err := l.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	want := &cpb.NodeLabels{Pairs: []*cpb.NodeLabels_Pair{
		{Key: "a", Value: "1"},
		{Key: "b", Value: "2"},
	}}
	if got := l.Proto(); !proto.Equal(got, want) {
		t.Errorf("Proto() = %v, want %v", got, want)
	}
	if got := GetNodeLabel(in, "b"); got != "2" {
		t.Errorf("GetNodeLabel(b) = %q, want 2", got)
	}
	if got := GetNodeLabel(in, "c"); got != "" {
		t.Errorf("GetNodeLabel(c) = %q, want empty", got)
	}

	many := Labels{}
	for i := 0; i <= MaxLabelsPerNode; i++ {
		many[strings.Repeat("k", i%60+1)+string(rune('a'+i/60))] = ""
	}
	if err := many.Validate(); err == nil {
		t.Errorf("Validate of %d labels succeeded, want error", len(many))
	}
}

func TestValidateClusterDomain(t *testing.T) {
	for _, tc := range []struct {
		domain string
		ok     bool
	}{
		{"cluster.internal", true},
		{"cluster.test", true},
		{"a", true},
		{"my-cluster.example.com", true},
		{"k8s.a1", true},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 16), true},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 17), false},
		{"", false},
		{"Cluster.internal", false},
		{"cluster..internal", false},
		{".cluster", false},
		{"cluster.", false},
		{"-cluster.internal", false},
		{"cluster-.internal", false},
		{"cluster_a.internal", false},
		{"10.0.0.1", false},
		{"cluster.123", false},
		{strings.Repeat("a", 64), false},
	} {
		err := ValidateClusterDomain(tc.domain)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateClusterDomain(%q) = %v, want ok=%v", tc.domain, err, tc.ok)
		}
	}
}
