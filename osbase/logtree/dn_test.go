package logtree

import (
	"slices"
	"strings"
	"testing"
)

func TestDNPath(t *testing.T) {
	for _, tc := range []struct {
		dn      DN
		want    []string
		wantErr bool
	}{
		{dn: "", want: []string{}},
		{dn: "root", want: []string{"root"}},
		{dn: "root.network.dhcp", want: []string{"root", "network", "dhcp"}},
		{dn: "a-b.c_d.1", want: []string{"a-b", "c_d", "1"}},
		{dn: ".", wantErr: true},
		{dn: ".root", wantErr: true},
		{dn: "root.", wantErr: true},
		{dn: "root..network", wantErr: true},
		{dn: "..", wantErr: true},
	} {
		got, err := tc.dn.Path()
		if tc.wantErr {
			if err == nil {
				t.Errorf("%q: got path %q, want error", tc.dn, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: unexpected error: %v", tc.dn, err)
			continue
		}
		if got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.dn, got, tc.want)
		}
	}
}

func FuzzDNPath(f *testing.F) {
	for _, s := range []string{"", "root", "root.a.b", ".", "a..b", "a.", ".a", "\xff.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		path, err := DN(s).Path()
		hasEmptyPart := s != "" && slices.Contains(strings.Split(s, "."), "")
		if (err != nil) != hasEmptyPart {
			t.Fatalf("%q: got error %v, want error: %v", s, err, hasEmptyPart)
		}
		if err == nil && strings.Join(path, ".") != s {
			t.Fatalf("%q: path %q does not join back to the DN", s, path)
		}
	})
}
