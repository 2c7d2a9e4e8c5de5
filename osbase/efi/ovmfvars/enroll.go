package ovmfvars

import (
	"errors"
	"fmt"
	"time"
)

// EnrollTime is the timestamp of the key variables EnrollSecureBoot writes.
// It is fixed so that the same keys give the same store, and early so that
// any later authenticated update of a key variable, which must carry a
// newer timestamp, is accepted.
var EnrollTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// secureBootKeyAttributes are the attributes of PK, KEK, db and dbx (UEFI
// specification, section 3.3).
const secureBootKeyAttributes = AttrNonVolatile | AttrBootServiceAccess | AttrRuntimeAccess | AttrTimeBasedAuthenticatedWriteAccess

// SecureBootKeys are the contents of the Secure Boot key variables, each
// one or more EFI_SIGNATURE_LISTs (UEFI specification, section 32.4.1).
type SecureBootKeys struct {
	// PK is the platform key: one list with one X.509 certificate.
	PK []byte
	// KEK are the key exchange keys, which may update db and dbx.
	KEK []byte
	// DB are the certificates and hashes of images allowed to boot.
	DB []byte
	// DBX, if not empty, are those of images refused to boot.
	DBX []byte
}

// EnrollSecureBoot returns a copy of template, a variable store in setup
// mode (no PK), with the keys enrolled and Secure Boot switched on, as if
// they had been enrolled through the firmware's setup menu:
//
//   - PK, KEK (vendor EFI_GLOBAL_VARIABLE), db and dbx (vendor
//     EFI_IMAGE_SECURITY_DATABASE_GUID) hold the keys, as non-volatile,
//     boot and runtime time-based authenticated variables stamped with
//     EnrollTime;
//   - SecureBootEnable (EDK2's switch, which its setup menu shows) is 1, so
//     that the firmware enforces Secure Boot once a PK exists;
//   - CustomMode is 0 (standard mode), in which the firmware checks the
//     signature of every change to the key variables.
//
// The firmware derives the rest (SetupMode, SecureBoot, the certificate
// database) when it starts. The result depends only on its inputs.
func EnrollSecureBoot(template []byte, keys SecureBootKeys) ([]byte, error) {
	s, err := Parse(template)
	if err != nil {
		return nil, fmt.Errorf("parsing the template: %w", err)
	}
	if s.Get("PK", GlobalVariableGUID) != nil {
		return nil, errors.New("the template has a platform key already; start from a store in setup mode, such as OVMF_VARS_4M.fd")
	}
	if err := checkPK(keys.PK); err != nil {
		return nil, err
	}
	vars := []Variable{
		{Name: "PK", Vendor: GlobalVariableGUID, Data: keys.PK},
		{Name: "KEK", Vendor: GlobalVariableGUID, Data: keys.KEK},
		{Name: "db", Vendor: ImageSecurityDatabaseGUID, Data: keys.DB},
	}
	if len(keys.DBX) != 0 {
		vars = append(vars, Variable{Name: "dbx", Vendor: ImageSecurityDatabaseGUID, Data: keys.DBX})
	}
	for i := range vars {
		v := &vars[i]
		if _, err := ParseSignatureLists(v.Data); err != nil {
			return nil, fmt.Errorf("%s: %w", v.Name, err)
		}
		v.Attributes = secureBootKeyAttributes
		v.Timestamp = EnrollTime
	}
	vars = append(vars,
		Variable{Name: "SecureBootEnable", Vendor: SecureBootEnableGUID, Attributes: AttrNonVolatile | AttrBootServiceAccess, Data: []byte{1}},
		Variable{Name: "CustomMode", Vendor: CustomModeGUID, Attributes: AttrNonVolatile | AttrBootServiceAccess, Data: []byte{0}},
	)
	for _, v := range vars {
		if err := s.Set(v); err != nil {
			return nil, err
		}
	}
	return s.Bytes(), nil
}

// checkPK checks that pk is what the firmware accepts as the platform key:
// a single X.509 certificate.
func checkPK(pk []byte) error {
	lists, err := ParseSignatureLists(pk)
	if err != nil {
		return fmt.Errorf("PK: %w", err)
	}
	if len(lists) != 1 || len(lists[0].Signatures) != 1 || lists[0].Type != CertX509GUID {
		return errors.New("PK: want one signature list with one X.509 certificate")
	}
	return nil
}
