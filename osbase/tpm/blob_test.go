package tpm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

// TestPCRPolicy checks the policy digest against one computed from the TPM
// specification (Part 3, TPM2_PolicyPCR) by hand: SHA-256 of the previous
// digest (zeros), TPM_CC_PolicyPCR, the TPML_PCR_SELECTION and the digest of
// the PCR values.
func TestPCRPolicy(t *testing.T) {
	pcr7 := bytes.Repeat([]byte{0x77}, 32)
	pcr16 := bytes.Repeat([]byte{0x16}, 32)
	values := sha256.Sum256(append(append([]byte{}, pcr7...), pcr16...))
	var in []byte
	in = append(in, make([]byte, 32)...)
	in = binary.BigEndian.AppendUint32(in, 0x0000017f) // TPM_CC_PolicyPCR
	in = binary.BigEndian.AppendUint32(in, 1)          // one selection
	in = binary.BigEndian.AppendUint16(in, 0x000b)     // SHA-256
	in = append(in, 3, 0x80, 0x00, 0x01)               // PCRs 7 and 16
	in = append(in, values[:]...)
	want := sha256.Sum256(in)

	got, err := pcrPolicy([]int{7, 16}, [][]byte{pcr7, pcr16})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want[:]) {
		t.Errorf("pcrPolicy = %x, want %x", got, want)
	}
}

// testBlob returns a blob as Seal makes it, sealed to PCR 7 having the
// value 0x77..., with made-up TPM parts.
func testBlob(t testing.TB) *sealedBlob {
	t.Helper()
	pcrs, values := []int{7}, [][]byte{bytes.Repeat([]byte{0x77}, 32)}
	policy, err := pcrPolicy(pcrs, values)
	if err != nil {
		t.Fatal(err)
	}
	pub := tpm2.TPMTPublic{
		Type:             tpm2.TPMAlgKeyedHash,
		NameAlg:          tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{FixedTPM: true, FixedParent: true, AdminWithPolicy: true, NoDA: true},
		AuthPolicy:       tpm2.TPM2BDigest{Buffer: policy},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
			Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgKeyedHash, &tpm2.TPM2BDigest{Buffer: bytes.Repeat([]byte{0xaa}, 32)}),
	}
	return &sealedBlob{
		pcrs:       pcrs,
		values:     values,
		srkName:    append([]byte{0x00, 0x0b}, bytes.Repeat([]byte{0x55}, 32)...),
		public:     tpm2.Marshal(&pub),
		private:    bytes.Repeat([]byte{0xee}, 126),
		nonce:      bytes.Repeat([]byte{1}, nonceSize),
		ciphertext: bytes.Repeat([]byte{2}, 48),
	}
}

func TestParseBlobRoundTrip(t *testing.T) {
	want := testBlob(t)
	got, err := parseBlob(want.marshal())
	if err != nil {
		t.Fatal(err)
	}
	got.pub = nil
	if !bytes.Equal(got.marshal(), want.marshal()) {
		t.Errorf("parsed blob marshals differently:\n got %x\nwant %x", got.marshal(), want.marshal())
	}
	if len(got.pcrs) != 1 || got.pcrs[0] != 7 {
		t.Errorf("pcrs = %v, want [7]", got.pcrs)
	}
}

func TestParseBlobRejects(t *testing.T) {
	good := testBlob(t).marshal()
	// Offsets in the marshaled test blob.
	const (
		offVersion = 8
		offMask    = 10
		offValues  = 14
		offName    = offValues + 32
	)
	for _, tc := range []struct {
		name   string
		change func(b []byte) []byte
		want   string
	}{
		{"empty", func([]byte) []byte { return nil }, "ends within the magic"},
		{"wrong magic", func(b []byte) []byte { b[0] = 'X'; return b }, "does not start with TPM2SEAL"},
		{"future version", func(b []byte) []byte { b[offVersion+1] = 2; return b }, "format version is 2"},
		{"no PCRs", func(b []byte) []byte { binary.BigEndian.PutUint32(b[offMask:], 0); return b }, "selects none"},
		{"PCR 24", func(b []byte) []byte { binary.BigEndian.PutUint32(b[offMask:], 1<<24); return b }, "selects none of PCRs 0-23, or others"},
		{"more PCRs than values", func(b []byte) []byte { binary.BigEndian.PutUint32(b[offMask:], 0xffffff); return b }, ""},
		{"changed PCR value", func(b []byte) []byte { b[offValues] ^= 1; return b }, "policy does not match its PCR values"},
		{"empty name", func(b []byte) []byte { binary.BigEndian.PutUint16(b[offName:], 0); return b }, "SRK name has 0 bytes"},
		{"huge name", func(b []byte) []byte { binary.BigEndian.PutUint16(b[offName:], 0xffff); return b }, "SRK name has 65535 bytes"},
		{"no ciphertext", func(b []byte) []byte { return b[:len(b)-48] }, "ciphertext has 0 bytes"},
		{"short ciphertext", func(b []byte) []byte { return b[:len(b)-33] }, "ciphertext has 15 bytes"},
		{"truncated", func(b []byte) []byte { return b[:offName+10] }, "ends within the SRK name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.change(bytes.Clone(good))
			_, err := parseBlob(b)
			if !errors.Is(err, ErrInvalidBlob) {
				t.Fatalf("parseBlob = %v, want ErrInvalidBlob", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseBlob = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseBlobRejectsOtherObjects(t *testing.T) {
	b := testBlob(t)
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.public)
	if err != nil {
		t.Fatal(err)
	}
	// An object with another name algorithm.
	pub.NameAlg = tpm2.TPMAlgSHA1
	b.public = tpm2.Marshal(pub)
	if _, err := parseBlob(b.marshal()); err == nil || !strings.Contains(err.Error(), "not a sealed data object") {
		t.Errorf("parseBlob of an object named with SHA-1 = %v, want it refused", err)
	}
	// Trailing bytes after the public area.
	b = testBlob(t)
	b.public = append(b.public, 0)
	if _, err := parseBlob(b.marshal()); err == nil || !strings.Contains(err.Error(), "trailing bytes") {
		t.Errorf("parseBlob with a trailing byte in the public area = %v, want it refused", err)
	}
}

func TestCheckPCRs(t *testing.T) {
	if got, err := checkPCRs([]int{16, 7, 0}); err != nil || len(got) != 3 || got[0] != 0 || got[2] != 16 {
		t.Errorf("checkPCRs([16 7 0]) = %v, %v; want [0 7 16]", got, err)
	}
	for _, pcrs := range [][]int{nil, {-1}, {24}, {7, 7}} {
		if _, err := checkPCRs(pcrs); err == nil {
			t.Errorf("checkPCRs(%v) succeeded", pcrs)
		}
	}
}
