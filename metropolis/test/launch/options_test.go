package launch

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int64
		wantErr string
	}{
		{in: "1K", want: 1 << 10},
		{in: "512M", want: 512 << 20},
		{in: "2048m", want: 2048 << 20},
		{in: "2G", want: 2 << 30},
		{in: "4GiB", want: 4 << 30},
		{in: "4gb", want: 4 << 30},
		{in: "1T", want: 1 << 40},
		{in: "8388607T", want: 8388607 << 40},
		{in: "", wantErr: "want a whole number with a unit"},
		{in: "G", wantErr: "want a whole number with a unit"},
		{in: "-1G", wantErr: "want a whole number with a unit"},
		{in: " 1G", wantErr: "want a whole number with a unit"},
		{in: "1.5G", wantErr: `unknown unit ".5G"`},
		{in: "1024", wantErr: "has no unit"},
		{in: "1024B", wantErr: "has no unit"},
		{in: "3P", wantErr: `unknown unit "P"`},
		{in: "1GG", wantErr: "unknown unit"},
		{in: "0M", wantErr: "is zero"},
		{in: "8388608T", wantErr: "too large"},
		{in: "99999999999999999999K", wantErr: "too large"},
	} {
		got, err := ParseSize(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestParseMiB(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    int
		wantErr string
	}{
		{in: "2048M", want: 2048},
		{in: "1G", want: 1024},
		{in: "1536K", wantErr: "not a whole number of MiB"},
		{in: "1024K", want: 1},
		{in: "4096T", wantErr: "too large"},
		{in: "2048", wantErr: "has no unit"},
	} {
		got, err := ParseMiB(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseMiB(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseMiB(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := ClusterOptions{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.NumNodes != 1 || o.TPMMode != DefaultTPMMode || o.StorageSecurity != DefaultStorageSecurity ||
		o.ClusterDomain != DefaultClusterDomain || o.Node.CPUs != 1 || o.Node.MemoryMiB != DefaultMemoryMiB ||
		o.Node.DiskSize != DefaultDiskSize || o.Logf == nil {
		t.Errorf("defaults: got %+v", o)
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    ClusterOptions
		wantErr string
	}{
		{"negative nodes", ClusterOptions{NumNodes: -1}, "NumNodes is -1"},
		{"too many nodes", ClusterOptions{NumNodes: maxNodes + 1}, "want 1 to"},
		{"TPM mode", ClusterOptions{TPMMode: "sometimes"}, `unknown TPM mode "sometimes"; modes are best-effort, disabled, required`},
		{"storage", ClusterOptions{StorageSecurity: "secure"}, `unknown storage security policy "secure"`},
		{"domain", ClusterOptions{ClusterDomain: "Not A Domain"}, `cluster domain "Not A Domain"`},
		{"CPUs", ClusterOptions{Node: NodeOptions{CPUs: -2}}, "node CPUs is -2"},
		{"memory", ClusterOptions{Node: NodeOptions{MemoryMiB: -1}}, "node memory is -1 MiB"},
		{"disk", ClusterOptions{Node: NodeOptions{DiskSize: "lots"}}, "node disk size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.opts.withDefaults()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestDeclaresModule(t *testing.T) {
	for _, tc := range []struct {
		gomod string
		want  bool
	}{
		{"module metropolis.dev\n\ngo 1.26\n", true},
		{"// comment\nmodule \"metropolis.dev\"\n", true},
		{"module metropolis.dev/other\n", false},
		{"module example.com\n", false},
		{"go 1.26\n", false},
	} {
		if got := declaresModule([]byte(tc.gomod), modulePath); got != tc.want {
			t.Errorf("declaresModule(%q) = %v, want %v", tc.gomod, got, tc.want)
		}
	}
}
