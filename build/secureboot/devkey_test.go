package secureboot

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"metropolis.dev/build/debian"
)

func TestEnsureDevKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "secureboot-dev")
	var msg bytes.Buffer
	key, err := EnsureDevKey(dir, &msg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.String(), "new DEVELOPMENT Secure Boot key in "+dir) {
		t.Errorf("creating the key said %q, want it to announce a new development key", msg.String())
	}
	if bits := key.Signer.(*rsa.PrivateKey).N.BitLen(); bits != 2048 {
		t.Errorf("key has %d bits, want 2048", bits)
	}
	c := key.Certificate
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		t.Errorf("certificate is not self-signed: %v", err)
	}
	if key.Certificate.SignatureAlgorithm != x509.SHA256WithRSA {
		t.Errorf("certificate signed with %v, want SHA256-RSA", key.Certificate.SignatureAlgorithm)
	}

	for name, wantMode := range map[string]os.FileMode{".": 0o700, DevKeyFile: 0o600, DevCertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != wantMode {
			t.Errorf("%s has mode %v, want %v", name, st.Mode().Perm(), wantMode)
		}
	}
	for name, want := range map[string][]byte{
		DevCertDERFile:       key.Certificate.Raw,
		DevSignatureListFile: SignatureList(key.Certificate),
	} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s does not hold the certificate in its form", name)
		}
	}

	msg.Reset()
	again, err := EnsureDevKey(dir, &msg)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Certificate.Equal(key.Certificate) {
		t.Error("a second call created another key")
	}
	if !strings.Contains(msg.String(), "existing DEVELOPMENT Secure Boot key in "+dir) {
		t.Errorf("reusing the key said %q, want it to announce the existing development key", msg.String())
	}
}

// TestEnsureDevKeyConcurrent creates the key from several goroutines at
// once, as concurrent builds would: all must end up with the same key.
func TestEnsureDevKeyConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secureboot-dev")
	const n = 4
	keys := make([]*Key, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], errs[i] = EnsureDevKey(dir, &bytes.Buffer{}) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("call %d: %v", i, errs[i])
		}
		if !keys[i].Certificate.Equal(keys[0].Certificate) {
			t.Errorf("call %d got another key than call 0", i)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("left %d entries beside the key directory, want none", len(entries)-1)
	}
}

func TestEnsureDevKeyErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
		want  string
	}{
		{"foreign files", func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "other"), nil, 0o644)
		}, "has files but no key.pem"},
		{"certificate without key", func(dir string) error {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, DevCertFile), nil, 0o644)
		}, "has files but no key.pem"},
		{"damaged key", func(dir string) error {
			if err := writeDevKeyDir(dir); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, DevKeyFile), []byte("garbage"), 0o600)
		}, "holds no PEM block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "secureboot-dev")
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			_, err := EnsureDevKey(dir, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func writeDevKeyDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	return writeDevKey(dir)
}

func TestEnsureDevKeyEmptyDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secureboot-dev")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureDevKey(dir, &bytes.Buffer{}); err != nil {
		t.Errorf("an empty directory should take a new key: %v", err)
	}
}

func TestDefaultDevKeyDir(t *testing.T) {
	t.Setenv(debian.CacheEnv, "/some/cache")
	if got, err := DefaultDevKeyDir(); err != nil || got != "/some/cache/secureboot-dev" {
		t.Errorf("with %s set: got %q, %v, want /some/cache/secureboot-dev", debian.CacheEnv, got, err)
	}
	t.Setenv(debian.CacheEnv, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got, err := DefaultDevKeyDir(); err != nil || got != "/xdg/metropolis/secureboot-dev" {
		t.Errorf("without %s: got %q, %v, want /xdg/metropolis/secureboot-dev", debian.CacheEnv, got, err)
	}
}
