package bootparam

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Cmdline
	}{
		{"", Cmdline{}},
		{"quiet\n", Cmdline{Params: []Param{{Key: "quiet"}}}},
		{"console=ttyS0,115200  quiet empty=", Cmdline{Params: []Param{
			{Key: "console", Value: "ttyS0,115200", HasValue: true},
			{Key: "quiet"},
			{Key: "empty", HasValue: true},
		}}},
		{`dm-mod.create="rootfs,,,ro,0 8 verity 1" root=/dev/dm-0`, Cmdline{Params: []Param{
			{Key: "dm-mod.create", Value: "rootfs,,,ro,0 8 verity 1", HasValue: true},
			{Key: "root", Value: "/dev/dm-0", HasValue: true},
		}}},
		{`"a=b c" "flag"`, Cmdline{Params: []Param{
			{Key: "a", Value: "b c", HasValue: true},
			{Key: "flag"},
		}}},
		{`x=1 -- single "two words"`, Cmdline{
			Params:   []Param{{Key: "x", Value: "1", HasValue: true}},
			InitArgs: []string{"single", "two words"},
		}},
	} {
		got, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("Parse(%q) = %+v, want %+v", tc.in, *got, tc.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		`a="b`,
		`a="b"c`,
		`a=b"c"`,
		`"a=b`,
		`=value`,
	} {
		if c, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want error", in, c)
		}
	}
}

func TestLookup(t *testing.T) {
	c, err := Parse("a=1 b a=2 c=3")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := c.Lookup("c"); v != "3" || !ok || err != nil {
		t.Errorf("Lookup(c) = %q, %v, %v; want 3, true, nil", v, ok, err)
	}
	if v, ok, err := c.Lookup("b"); v != "" || !ok || err != nil {
		t.Errorf("Lookup(b) = %q, %v, %v; want \"\", true, nil", v, ok, err)
	}
	if _, ok, err := c.Lookup("d"); ok || err != nil {
		t.Errorf("Lookup(d) = %v, %v; want false, nil", ok, err)
	}
	if _, _, err := c.Lookup("a"); err == nil || !strings.Contains(err.Error(), "more than once") {
		t.Errorf("Lookup(a) error = %v, want one about a repeated key", err)
	}
}
