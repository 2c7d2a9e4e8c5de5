package ovmfvars

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse survives any input, that what it accepts it
// gives back unchanged, and that a store it accepts can be written to and
// read again.
func FuzzParse(f *testing.F) {
	f.Add(smallStore())
	s, err := Parse(smallStore())
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []Variable{
		{Name: "PK", Vendor: GlobalVariableGUID, Attributes: 0x27, Timestamp: EnrollTime, Data: signatureList(CertX509GUID, testOwner, []byte("cert"))},
		{Name: "PK", Vendor: GlobalVariableGUID, Attributes: 0x27, Data: []byte("replaced")},
		{Name: "Boot0000", Vendor: GlobalVariableGUID, Attributes: 7, Data: []byte{1, 2, 3}},
	} {
		if err := s.Set(v); err != nil {
			f.Fatal(err)
		}
		f.Add(s.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(s.Bytes(), b) {
			t.Fatal("Bytes() differs from the parsed input")
		}
		n := len(s.Variables())
		err = s.Set(Variable{Name: "Fuzz", Vendor: GlobalVariableGUID, Attributes: 3, Data: []byte{42}})
		if err != nil {
			return
		}
		p, err := Parse(s.Bytes())
		if err != nil {
			t.Fatalf("the store does not parse after Set: %v", err)
		}
		if v := p.Get("Fuzz", GlobalVariableGUID); v == nil || !bytes.Equal(v.Data, []byte{42}) {
			t.Fatalf("the variable written by Set reads as %+v", v)
		}
		if len(p.Variables()) < n+1 {
			t.Fatalf("%d records after Set, want at least %d", len(p.Variables()), n+1)
		}
	})
}
