package core

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/pki/pkitest"
)

func TestParseEndpoint(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "10.1.0.2", want: "10.1.0.2:7835"},
		{in: " node1.example.com ", want: "node1.example.com:7835"},
		{in: "10.1.0.2:1234", want: "10.1.0.2:1234"},
		{in: "fe80::1", want: "[fe80::1]:7835"},
		{in: "[fe80::1]", want: "[fe80::1]:7835"},
		{in: "[fe80::1]:99", want: "[fe80::1]:99"},
		{in: "", wantErr: true},
		{in: "host:", wantErr: true},
		{in: "host:0", wantErr: true},
		{in: "host:70000", wantErr: true},
		{in: ":7835", wantErr: true},
		{in: "a:b:c", wantErr: true},
	} {
		got, err := ParseEndpoint(tc.in)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseEndpoint(%q) = %v, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseEndpoint(%q) = %v, %v, want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := parseEndpoints(nil); !errors.Is(err, ErrNoEndpoints) {
		t.Errorf("no endpoints: %v, want ErrNoEndpoints", err)
	}
	eps, err := parseEndpoints([]string{"a", "a:7835", "b"})
	if err != nil || len(eps) != 2 {
		t.Errorf("duplicates are not dropped: %v, %v", eps, err)
	}
}

func testCA(t *testing.T) *x509.Certificate {
	return pkitest.CA(t, "")
}

func TestFingerprint(t *testing.T) {
	ca := testCA(t)
	fp := Fingerprint(ca)
	hexPart := strings.TrimPrefix(fp, "SHA256:")
	if len(hexPart) != 64 || hexPart == fp {
		t.Fatalf("Fingerprint = %q, want SHA256: and 64 hex digits", fp)
	}
	var colons []string
	for i := 0; i < len(hexPart); i += 2 {
		colons = append(colons, hexPart[i:i+2])
	}
	for _, form := range []string{fp, hexPart, strings.ToUpper(fp), "sha256:" + hexPart, strings.Join(colons, ":"), " " + fp + "\n"} {
		digest, err := ParseFingerprint(form)
		if err != nil {
			t.Errorf("ParseFingerprint(%q): %v", form, err)
			continue
		}
		if !matchesFingerprint(ca, digest) {
			t.Errorf("ParseFingerprint(%q) does not match the certificate", form)
		}
	}
	if matchesFingerprint(testCA(t), mustParseFingerprint(t, fp)) {
		t.Errorf("fingerprint matches another certificate")
	}
	for _, bad := range []string{"", "SHA256:", "SHA256:abcd", hexPart + "00", "MD5:" + hexPart, strings.Replace(hexPart, "0", "g", 1) + "0"} {
		if _, err := ParseFingerprint(bad); err == nil {
			t.Errorf("ParseFingerprint(%q) succeeded", bad)
		}
	}
}

func mustParseFingerprint(t *testing.T, s string) []byte {
	t.Helper()
	d, err := ParseFingerprint(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConfig(t *testing.T) {
	cfg := Config{Dir: filepath.Join(t.TempDir(), "metroctl")}
	if _, err := cfg.OwnerKey(); !errors.Is(err, ErrNoOwnerKey) {
		t.Errorf("OwnerKey of an empty directory: %v, want ErrNoOwnerKey", err)
	}
	if _, err := cfg.TrustedCA(); !errors.Is(err, ErrNoTrustedCA) {
		t.Errorf("TrustedCA of an empty directory: %v, want ErrNoTrustedCA", err)
	}

	// Concurrent callers agree on one key.
	keys := make([]ed25519.PrivateKey, 8)
	created := make([]bool, len(keys))
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			var err error
			keys[i], created[i], err = cfg.EnsureOwnerKey()
			if err != nil {
				t.Errorf("EnsureOwnerKey: %v", err)
			}
		})
	}
	wg.Wait()
	creators := 0
	for i, k := range keys {
		if !k.Equal(keys[0]) {
			t.Errorf("EnsureOwnerKey %d returned another key", i)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers created the key, want 1", creators)
	}
	for path, mode := range map[string]os.FileMode{cfg.Dir: 0o700 | os.ModeDir, cfg.OwnerKeyPath(): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != mode {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), mode)
		}
	}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("configuration directory holds %d files, want only the key (no temporary files)", len(entries))
	}
	key, err := cfg.OwnerKey()
	if err != nil || !key.Equal(keys[0]) {
		t.Errorf("OwnerKey = %v, want the created key", err)
	}

	if _, err := cfg.OwnerCertificate(); !errors.Is(err, ErrNoOwnerCertificate) {
		t.Errorf("OwnerCertificate without certificate: %v, want ErrNoOwnerCertificate", err)
	}
	ca := testCA(t)
	if err := cfg.SaveTrustedCA(ca); err != nil {
		t.Fatal(err)
	}
	if got, err := cfg.TrustedCA(); err != nil || !got.Equal(ca) {
		t.Errorf("TrustedCA = %v, want the saved CA", err)
	}
	// A certificate for another key is refused.
	if err := cfg.SaveOwnerCertificate(ca.Raw); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.OwnerCertificate(); err == nil || !strings.Contains(err.Error(), "is not for the owner key") {
		t.Errorf("OwnerCertificate for a foreign certificate: %v", err)
	}
	if err := os.WriteFile(cfg.TrustedCAPath(), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.TrustedCA(); err == nil || !strings.Contains(err.Error(), `type "PRIVATE KEY"`) {
		t.Errorf("TrustedCA of a key file: %v", err)
	}
}

func TestParseRole(t *testing.T) {
	for in, want := range map[string]Role{
		"KubernetesWorker":     RoleKubernetesWorker,
		"kw":                   RoleKubernetesWorker,
		"KW":                   RoleKubernetesWorker,
		"kubernetescontroller": RoleKubernetesController,
		"kc":                   RoleKubernetesController,
		"ConsensusMember":      RoleConsensusMember,
		"Cm":                   RoleConsensusMember,
	} {
		if got, err := ParseRole(in); err != nil || got != want {
			t.Errorf("ParseRole(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "worker", "k"} {
		if _, err := ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) succeeded", bad)
		}
	}
	req := RoleKubernetesController.UpdateRequest("metropolis-1", false)
	if req.GetId() != "metropolis-1" || req.KubernetesController == nil || *req.KubernetesController || req.KubernetesWorker != nil || req.ConsensusMember != nil {
		t.Errorf("UpdateRequest = %v", req)
	}
}

func TestParseLabels(t *testing.T) {
	labels, err := ParseLabels([]string{"zone=west", "example.com/rack=a12", "empty="})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range labels.Pairs {
		got = append(got, p.Key+"="+p.Value)
	}
	if want := "empty=,example.com/rack=a12,zone=west"; strings.Join(got, ",") != want {
		t.Errorf("ParseLabels = %q, want %q (sorted)", got, want)
	}
	for _, bad := range [][]string{{"novalue"}, {"a=b", "a=c"}, {"-a=b"}, {"a=b c"}, {"=b"}} {
		if _, err := ParseLabels(bad); err == nil {
			t.Errorf("ParseLabels(%q) succeeded", bad)
		}
	}
}

func TestNodeTable(t *testing.T) {
	nodes := []*apb.Node{
		{
			Id:    "metropolis-aaaa",
			State: cpb.NodeState_NODE_STATE_UP,
			Status: &cpb.NodeStatus{
				ExternalAddress: "10.1.0.2",
				Version:         &cpb.Version{Release: "v0.1.0"},
			},
			Roles: &cpb.NodeRoles{
				KubernetesWorker:     &cpb.NodeRoles_KubernetesWorker{},
				ConsensusMember:      &cpb.NodeRoles_ConsensusMember{},
				KubernetesController: &cpb.NodeRoles_KubernetesController{},
			},
			Health:             apb.Node_HEALTH_HEALTHY,
			TimeSinceHeartbeat: durationpb.New(2600 * time.Millisecond),
			TpmUsage:           cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_AND_USED,
		},
		{
			Id:       "metropolis-bb",
			State:    cpb.NodeState_NODE_STATE_NEW,
			Health:   apb.Node_HEALTH_UNKNOWN,
			TpmUsage: cpb.NodeTPMUsage_NODE_TPM_USAGE_PRESENT_BUT_UNUSED,
		},
	}
	var b bytes.Buffer
	if err := NodeTable(nodes).Write(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"NODE ID           STATE   ADDRESS    HEALTH    ROLES                                                   TPM      VERSION   HEARTBEAT\n" +
		"metropolis-aaaa   UP      10.1.0.2   HEALTHY   ConsensusMember,KubernetesController,KubernetesWorker   yes      v0.1.0    3s\n" +
		"metropolis-bb     NEW     unknown    UNKNOWN   -                                                       unused   unknown   unknown\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := WriteMessagesJSON(&b, nodes[1:]); err != nil {
		t.Fatal(err)
	}
	wantJSON := "[\n  {\n    \"id\": \"metropolis-bb\",\n    \"state\": \"NODE_STATE_NEW\",\n    \"health\": \"HEALTH_UNKNOWN\",\n    \"tpm_usage\": \"NODE_TPM_USAGE_PRESENT_BUT_UNUSED\"\n  }\n]\n"
	if b.String() != wantJSON {
		t.Errorf("JSON:\n%s\nwant:\n%s", b.String(), wantJSON)
	}
	b.Reset()
	if err := WriteMessagesJSON[*apb.Node](&b, nil); err != nil || b.String() != "[]\n" {
		t.Errorf("JSON of no nodes: %q, %v", b.String(), err)
	}
}

func TestBootstrapParameters(t *testing.T) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := Bootstrap{OwnerKey: pub, Domain: "cluster.internal", TPMMode: "best-effort", StorageSecurity: "permissive", Labels: []string{"a=b"}}
	params, err := BootstrapParameters(good)
	if err != nil {
		t.Fatal(err)
	}
	b := params.GetClusterBootstrap()
	cfg := b.GetInitialClusterConfiguration()
	if !bytes.Equal(b.GetOwnerPublicKey(), pub) || cfg.GetClusterDomain() != "cluster.internal" ||
		cfg.GetTpmMode() != cpb.ClusterConfiguration_TPM_MODE_BEST_EFFORT ||
		cfg.GetStorageSecurityPolicy() != cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_PERMISSIVE ||
		len(b.GetLabels().GetPairs()) != 1 {
		t.Errorf("BootstrapParameters = %v", params)
	}
	for name, change := range map[string]func(*Bootstrap){
		"short key":      func(b *Bootstrap) { b.OwnerKey = pub[:31] },
		"bad domain":     func(b *Bootstrap) { b.Domain = "Cluster_Internal" },
		"bad TPM mode":   func(b *Bootstrap) { b.TPMMode = "REQUIRED" },
		"bad storage":    func(b *Bootstrap) { b.StorageSecurity = "none" },
		"bad label":      func(b *Bootstrap) { b.Labels = []string{"a"} },
		"no domain":      func(b *Bootstrap) { b.Domain = "" },
		"empty TPM mode": func(b *Bootstrap) { b.TPMMode = "" },
	} {
		bad := good
		change(&bad)
		if _, err := BootstrapParameters(bad); err == nil {
			t.Errorf("%s: BootstrapParameters succeeded", name)
		}
	}
}
