package clusterflags

import (
	"flag"
	"io"
	"strings"
	"testing"

	"metropolis.dev/metropolis/test/launch"
)

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		check   func(launch.ClusterOptions) bool
		wantErr string
	}{
		{
			name: "defaults",
			check: func(o launch.ClusterOptions) bool {
				return o.NumNodes == 3 && o.Node.CPUs == 1 && o.Node.MemoryMiB == launch.DefaultMemoryMiB &&
					o.Node.DiskSize == launch.DefaultDiskSize && o.TPMMode == launch.DefaultTPMMode &&
					o.StorageSecurity == launch.DefaultStorageSecurity && o.ClusterDomain == launch.DefaultClusterDomain &&
					o.Image == "" && o.Node.AllowReboot
			},
		},
		{
			name: "all set",
			args: []string{"-cpu", "2", "-ram", "1G", "-disk", "10G", "-tpm-mode", "best-effort",
				"-storage-security", "needs-encryption", "-cluster-domain", "test.example", "-image", "x.img", "-allow-reboot=false"},
			check: func(o launch.ClusterOptions) bool {
				return o.Node.CPUs == 2 && o.Node.MemoryMiB == 1024 && o.Node.DiskSize == "10G" &&
					o.TPMMode == "best-effort" && o.StorageSecurity == "needs-encryption" &&
					o.ClusterDomain == "test.example" && o.Image == "x.img" && !o.Node.AllowReboot
			},
		},
		{name: "no CPUs", args: []string{"-cpu", "0"}, wantErr: "-cpu 0: want at least 1"},
		{name: "RAM without unit", args: []string{"-ram", "2048"}, wantErr: "-ram: size \"2048\" has no unit"},
		{name: "bad disk", args: []string{"-disk", "big"}, wantErr: "-disk:"},
		{name: "TPM mode", args: []string{"-tpm-mode", "maybe"}, wantErr: `-tpm-mode "maybe": want one of best-effort, disabled, required`},
		{name: "storage", args: []string{"-storage-security", "none"}, wantErr: `-storage-security "none"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			f := Register(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			o, err := f.Options(3, nil)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(o) {
				t.Errorf("got options %+v", o)
			}
		})
	}
}
