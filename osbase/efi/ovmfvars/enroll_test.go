package ovmfvars

import (
	"bytes"
	"strings"
	"testing"
)

func TestEnrollSecureBoot(t *testing.T) {
	template := readFile(t, blankStore)
	orig := bytes.Clone(template)
	pk := signatureList(CertX509GUID, testOwner, []byte("platform key"))
	kek := signatureList(CertX509GUID, testOwner, []byte("key exchange key"))
	db := append(signatureList(CertX509GUID, testOwner, []byte("db key")), signatureList(CertX509GUID, testOwner, []byte("db key 2"))...)
	dbx := signatureList(MustParseGUID("c1c41626-504c-4092-aca9-41f936934328"), testOwner, bytes.Repeat([]byte{9}, 32))
	keys := SecureBootKeys{PK: pk, KEK: kek, DB: db, DBX: dbx}
	out, err := EnrollSecureBoot(template, keys)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(template, orig) {
		t.Error("EnrollSecureBoot changed the template")
	}
	again, err := EnrollSecureBoot(template, keys)
	if err != nil || !bytes.Equal(out, again) {
		t.Errorf("enrolling the same keys again gave other bytes (error %v)", err)
	}
	// Only the variable area changes: the volume header and the fault
	// tolerant write areas after the store stay as the template has them.
	const storeEnd = 0x40000
	if !bytes.Equal(out[:0x48+storeHeaderSize], template[:0x48+storeHeaderSize]) || !bytes.Equal(out[storeEnd:], template[storeEnd:]) {
		t.Error("EnrollSecureBoot changed the headers or the areas after the store")
	}

	s := mustParse(t, out)
	for _, want := range []struct {
		name   string
		vendor GUID
		data   []byte
	}{
		{"PK", GlobalVariableGUID, pk},
		{"KEK", GlobalVariableGUID, kek},
		{"db", ImageSecurityDatabaseGUID, db},
		{"dbx", ImageSecurityDatabaseGUID, dbx},
	} {
		v := s.Get(want.name, want.vendor)
		if v == nil {
			t.Errorf("%s is missing", want.name)
			continue
		}
		if !bytes.Equal(v.Data, want.data) || v.Attributes != 0x27 || !v.Timestamp.Equal(EnrollTime) || v.State != VarAdded {
			t.Errorf("%s: data %q, attributes %#x, timestamp %v, state %#x; want the list, 0x27, %v, %#x",
				want.name, v.Data, v.Attributes, v.Timestamp, v.State, EnrollTime, VarAdded)
		}
	}
	for _, want := range []struct {
		name   string
		vendor GUID
		value  byte
	}{{"SecureBootEnable", SecureBootEnableGUID, 1}, {"CustomMode", CustomModeGUID, 0}} {
		v := s.Get(want.name, want.vendor)
		if v == nil || !bytes.Equal(v.Data, []byte{want.value}) || v.Attributes != AttrNonVolatile|AttrBootServiceAccess {
			t.Errorf("%s is %+v, want %d with attributes NV|BS", want.name, v, want.value)
		}
	}
	if n := len(s.Variables()); n != 6 {
		t.Errorf("%d variables, want 6", n)
	}

	// Without dbx, none is written.
	keys.DBX = nil
	out, err = EnrollSecureBoot(template, keys)
	if err != nil {
		t.Fatal(err)
	}
	if v := mustParse(t, out).Get("dbx", ImageSecurityDatabaseGUID); v != nil {
		t.Errorf("dbx is %+v without a dbx list", v)
	}
}

func TestEnrollSecureBootErrors(t *testing.T) {
	blank := readFile(t, blankStore)
	cert := signatureList(CertX509GUID, testOwner, []byte("key"))
	good := SecureBootKeys{PK: cert, KEK: cert, DB: cert}
	for _, tc := range []struct {
		name     string
		template []byte
		keys     SecureBootKeys
		want     string
	}{
		{"enrolled template", readFile(t, snakeoilStore), good, "platform key already"},
		{"damaged template", blank[:100], good, "parsing the template"},
		{"PK not a list", blank, SecureBootKeys{PK: []byte("DER"), KEK: cert, DB: cert}, "PK:"},
		{"two PKs", blank, SecureBootKeys{PK: append(bytes.Clone(cert), cert...), KEK: cert, DB: cert}, "want one signature list"},
		{"PK a hash", blank, SecureBootKeys{PK: signatureList(GlobalVariableGUID, testOwner, make([]byte, 32)), KEK: cert, DB: cert}, "X.509"},
		{"no KEK", blank, SecureBootKeys{PK: cert, DB: cert}, "KEK: empty"},
		{"db damaged", blank, SecureBootKeys{PK: cert, KEK: cert, DB: cert[:30]}, "db: signature list"},
		{"dbx damaged", blank, SecureBootKeys{PK: cert, KEK: cert, DB: cert, DBX: []byte{1}}, "dbx:"},
	} {
		if _, err := EnrollSecureBoot(tc.template, tc.keys); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: EnrollSecureBoot returned %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
