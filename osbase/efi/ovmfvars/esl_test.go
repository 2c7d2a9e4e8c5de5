package ovmfvars

import (
	"bytes"
	"encoding/binary"
	"encoding/pem"
	"strings"
	"testing"
)

func snakeoilDER(t *testing.T) []byte {
	t.Helper()
	block, _ := pem.Decode(readFile(t, snakeoilCert))
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("%s holds no certificate", snakeoilCert)
	}
	return block.Bytes
}

// signatureList returns an EFI_SIGNATURE_LIST of the given type with the
// entries, which must all be of one size, owned by owner.
func signatureList(typ, owner GUID, entries ...[]byte) []byte {
	b := append([]byte(nil), typ[:]...)
	size := 16 + len(entries[0])
	b = binary.LittleEndian.AppendUint32(b, uint32(eslHeaderSize+len(entries)*size))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	for _, e := range entries {
		b = append(b, owner[:]...)
		b = append(b, e...)
	}
	return b
}

var testOwner = MustParseGUID("11111111-2222-3333-4444-555555555555")

func TestParseSignatureLists(t *testing.T) {
	sha256GUID := MustParseGUID("c1c41626-504c-4092-aca9-41f936934328")
	cert := []byte("certificate")
	h1, h2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	b := append(signatureList(CertX509GUID, testOwner, cert), signatureList(sha256GUID, GlobalVariableGUID, h1, h2)...)
	lists, err := ParseSignatureLists(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(lists) != 2 || lists[0].Type != CertX509GUID || lists[1].Type != sha256GUID ||
		len(lists[0].Signatures) != 1 || lists[0].Signatures[0].Owner != testOwner || !bytes.Equal(lists[0].Signatures[0].Data, cert) ||
		len(lists[1].Signatures) != 2 || !bytes.Equal(lists[1].Signatures[1].Data, h2) || lists[1].Signatures[1].Owner != GlobalVariableGUID {
		t.Errorf("ParseSignatureLists returned %+v", lists)
	}

	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"short", b[:20], "too short"},
		{"size past end", b[:len(b)-1], "does not fit"},
		{"DER instead", snakeoilDER(t), ""},
		{"entry size", func() []byte {
			l := signatureList(CertX509GUID, testOwner, cert)
			binary.LittleEndian.PutUint32(l[24:], 5)
			return l
		}(), "entry size"},
		{"no entries", func() []byte {
			l := signatureList(CertX509GUID, testOwner, cert)[:eslHeaderSize]
			binary.LittleEndian.PutUint32(l[16:], eslHeaderSize)
			return l
		}(), "not a positive multiple"},
	} {
		if _, err := ParseSignatureLists(tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: ParseSignatureLists returned %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
