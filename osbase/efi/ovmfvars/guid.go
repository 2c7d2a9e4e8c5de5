package ovmfvars

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// GUID is a GUID in the byte order in which UEFI stores it: the first three
// groups little-endian, the last two as written.
type GUID [16]byte

// ParseGUID parses the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, in either
// case.
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("GUID %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36])); err != nil {
		return g, fmt.Errorf("GUID %q: %w", s, err)
	}
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(b[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(b[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(b[6:8]))
	copy(g[8:], b[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants: it panics on an invalid GUID.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String returns the lowercase form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func (g GUID) String() string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(g[0:4]),
		binary.LittleEndian.Uint16(g[4:6]),
		binary.LittleEndian.Uint16(g[6:8]),
		g[8:10], g[10:16])
}

// GUIDs of the formats this package reads and of the vendors of the
// variables that Secure Boot depends on.
var (
	// SystemNVDataFVGUID (gEfiSystemNvDataFvGuid) is the file system
	// GUID of the firmware volume that holds the variable store.
	SystemNVDataFVGUID = MustParseGUID("fff12b8d-7696-4c8b-a985-2747075b4f50")
	// AuthenticatedVariableStoreGUID (gEfiAuthenticatedVariableGuid)
	// marks a variable store whose variables have the authenticated
	// header, with a timestamp and monotonic count, which a store must
	// have to hold Secure Boot keys.
	AuthenticatedVariableStoreGUID = MustParseGUID("aaf32c78-947b-439a-a180-2e144ec37792")
	// GlobalVariableGUID (EFI_GLOBAL_VARIABLE) is the vendor of the
	// variables the UEFI specification defines, such as PK and KEK.
	GlobalVariableGUID = MustParseGUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
	// ImageSecurityDatabaseGUID (EFI_IMAGE_SECURITY_DATABASE_GUID) is the
	// vendor of db and dbx.
	ImageSecurityDatabaseGUID = MustParseGUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
	// SecureBootEnableGUID (gEfiSecureBootEnableDisableGuid) is the
	// vendor of EDK2's SecureBootEnable switch.
	SecureBootEnableGUID = MustParseGUID("f0a30bc7-af08-4556-99c4-001009c93a44")
	// CustomModeGUID (gEfiCustomModeEnableGuid) is the vendor of EDK2's
	// CustomMode variable.
	CustomModeGUID = MustParseGUID("c076ec0c-7028-4399-a072-71ee5c448b9f")
)
