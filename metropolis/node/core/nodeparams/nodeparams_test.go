package nodeparams

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

// certificate returns a self-signed ed25519 certificate, a CA if ca.
func certificate(t testing.TB, ca bool) []byte {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Metropolis Cluster CA"},
		NotBefore:             time.Now(),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  ca,
		KeyUsage:              x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func bootstrap() *api.NodeParameters {
	return &api.NodeParameters{Cluster: &api.NodeParameters_ClusterBootstrap_{
		ClusterBootstrap: &api.NodeParameters_ClusterBootstrap{OwnerPublicKey: make([]byte, 32)},
	}}
}

func register(ca []byte, directory *cpb.ClusterDirectory) *api.NodeParameters {
	return &api.NodeParameters{Cluster: &api.NodeParameters_ClusterRegister_{
		ClusterRegister: &api.NodeParameters_ClusterRegister{
			RegisterTicket:   []byte("ticket"),
			CaCertificate:    ca,
			ClusterDirectory: directory,
		},
	}}
}

func directory(addresses ...string) *cpb.ClusterDirectory {
	n := &cpb.ClusterDirectory_Node{Id: "metropolis-abc"}
	for _, a := range addresses {
		n.Addresses = append(n.Addresses, &cpb.ClusterDirectory_Node_Address{Host: a})
	}
	return &cpb.ClusterDirectory{Nodes: []*cpb.ClusterDirectory_Node{n}}
}

func TestValidate(t *testing.T) {
	ca := certificate(t, true)
	for _, tc := range []struct {
		name   string
		params *api.NodeParameters
		want   string // empty for valid parameters
	}{
		{"bootstrap", bootstrap(), ""},
		{"register", register(ca, directory("10.0.0.1", "fd00::1")), ""},
		{"empty", &api.NodeParameters{}, "neither cluster_bootstrap nor cluster_register"},
		{"nil bootstrap", &api.NodeParameters{Cluster: &api.NodeParameters_ClusterBootstrap_{}}, "cluster_bootstrap is empty"},
		{"short owner key", func() *api.NodeParameters {
			p := bootstrap()
			p.GetClusterBootstrap().OwnerPublicKey = make([]byte, 31)
			return p
		}(), "owner_public_key is 31 bytes long"},
		{"nil register", &api.NodeParameters{Cluster: &api.NodeParameters_ClusterRegister_{}}, "cluster_register is empty"},
		{"no ticket", func() *api.NodeParameters {
			p := register(ca, directory("10.0.0.1"))
			p.GetClusterRegister().RegisterTicket = nil
			return p
		}(), "register_ticket is empty"},
		{"no CA", register(nil, directory("10.0.0.1")), "ca_certificate: missing"},
		{"garbage CA", register([]byte("not DER"), directory("10.0.0.1")), "not a DER X.509 certificate"},
		{"CA not a CA", register(certificate(t, false), directory("10.0.0.1")), "is not a certificate authority"},
		{"no directory", register(ca, nil), "lists no nodes"},
		{"node without addresses", register(ca, directory()), `node 0 ("metropolis-abc") has no addresses`},
		{"host name", register(ca, directory("node.example")), `address "node.example" is not an IP address`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.params)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("got %v, want valid parameters", err)
			case tc.want != "" && err == nil:
				t.Errorf("valid, want an error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("got %q, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestValidateRejectsOtherKeyTypes(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ECDSA CA"},
		NotBefore:             time.Now(),
		NotAfter:              time.Now().Add(time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	err = Validate(register(der, directory("10.0.0.1")))
	if err == nil || !strings.Contains(err.Error(), "want ed25519") {
		t.Errorf("got %v, want an error about the key type", err)
	}
}

func writeParams(t *testing.T, path string, p *api.NodeParameters) {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	fwcfg := filepath.Join(dir, "fw_cfg", "raw")
	esp := filepath.Join(dir, "esp", ESPFile)

	if _, err := Read(fwcfg, esp); !errors.Is(err, ErrAbsent) {
		t.Errorf("no files: got %v, want ErrAbsent", err)
	}

	espParams := register(certificate(t, true), directory("10.0.0.1"))
	writeParams(t, esp, espParams)
	l, err := Read(fwcfg, esp)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != esp || !proto.Equal(l.Parameters, espParams) {
		t.Errorf("got %v from %s, want the ESP's", l.Parameters, l.Path)
	}

	// fw_cfg wins over the ESP.
	writeParams(t, fwcfg, bootstrap())
	l, err = Read(fwcfg, esp)
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != fwcfg || l.Parameters.GetClusterBootstrap() == nil {
		t.Errorf("got %v from %s, want fw_cfg's", l.Parameters, l.Path)
	}
	// Skipping fw_cfg finds the ESP's.
	if l, err := Read("", esp); err != nil || l.Path != esp {
		t.Errorf("without fw_cfg: got %v, %v, want the ESP's", l, err)
	}

	// Invalid parameters in fw_cfg are an error, not a reason to use the
	// ESP's.
	writeParams(t, fwcfg, &api.NodeParameters{})
	if _, err := Read(fwcfg, esp); err == nil || !strings.Contains(err.Error(), fwcfg) || errors.Is(err, ErrAbsent) {
		t.Errorf("invalid fw_cfg parameters: got %v, want an error naming %s", err, fwcfg)
	}
	if err := os.WriteFile(fwcfg, []byte{0xff, 0xff}, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(fwcfg, esp); err == nil || !strings.Contains(err.Error(), "not a NodeParameters proto") {
		t.Errorf("garbage in fw_cfg: got %v, want a parse error", err)
	}
	if err := os.WriteFile(fwcfg, make([]byte, maxSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(fwcfg, esp); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge fw_cfg file: got %v, want a size error", err)
	}
}

// FuzzParse checks that no bytes make Parse panic, and that whatever it
// accepts validates again after a round trip.
func FuzzParse(f *testing.F) {
	for _, p := range []*api.NodeParameters{bootstrap(), register(certificate(f, true), directory("10.0.0.1"))} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse(b)
		if err != nil {
			return
		}
		again, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse(again); err != nil {
			t.Fatalf("accepted %x, but not after a round trip: %v", b, err)
		}
	})
}
