package debian

import (
	"strings"
	"testing"
)

const testSHA = "a86e2049672f52354c4536a089203b6c82639420424d31c91cf31a181fd4d8f1"

func TestParsePins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    []Pin
		wantErr string
	}{
		{
			name: "comments and blank lines",
			in:   "# kernel\n\n  linux-image-6.1.0-56-amd64\t6.1.192-2 amd64 " + testSHA + "  \n",
			want: []Pin{{"linux-image-6.1.0-56-amd64", "6.1.192-2", "amd64", testSHA}},
		},
		{
			name: "epoch and tilde",
			in:   "systemd-boot-efi 1:252.39-1~deb12u2 all " + testSHA + "\nlibfoo2 2.0 amd64 " + testSHA,
			want: []Pin{
				{"systemd-boot-efi", "1:252.39-1~deb12u2", "all", testSHA},
				{"libfoo2", "2.0", "amd64", testSHA},
			},
		},
		{name: "empty", in: "", want: nil},
		{name: "too few fields", in: "foo 1.0 amd64", wantErr: "line 1: want 4 fields"},
		{name: "too many fields", in: "\nfoo 1.0 amd64 " + testSHA + " x", wantErr: "line 2: want 4 fields"},
		{name: "uppercase sha", in: "foo 1.0 amd64 " + strings.ToUpper(testSHA), wantErr: "invalid sha256"},
		{name: "short sha", in: "foo 1.0 amd64 abc", wantErr: "invalid sha256"},
		{name: "option as package", in: "-oFoo=bar 1.0 amd64 " + testSHA, wantErr: "invalid package name"},
		{name: "bad version", in: "foo 1.0;rm amd64 " + testSHA, wantErr: "invalid version"},
		{name: "version not starting with digit", in: "foo v1 amd64 " + testSHA, wantErr: "invalid version"},
		{name: "bad arch", in: "foo 1.0 AMD64 " + testSHA, wantErr: "invalid architecture"},
		{name: "duplicate", in: "foo 1.0 amd64 " + testSHA + "\nfoo 1.1 amd64 " + testSHA, wantErr: "line 2: package foo pinned twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePins(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("pin %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPinNames(t *testing.T) {
	p := Pin{Package: "systemd-boot-efi", Version: "1:252.39-1~deb12u2", Arch: "amd64", SHA256: testSHA}
	if got, want := p.String(), "systemd-boot-efi:amd64=1:252.39-1~deb12u2"; got != want {
		t.Errorf("String: got %q, want %q", got, want)
	}
	if got, want := p.FileName(), "systemd-boot-efi_1%3a252.39-1~deb12u2_amd64.deb"; got != want {
		t.Errorf("FileName: got %q, want %q", got, want)
	}
}
