// Package ovmfvars reads and writes the UEFI variable store files of OVMF,
// the EDK2 firmware qemu boots, in order to enroll Secure Boot keys into a
// VM's firmware without booting it.
//
// A VM under Secure Boot runs only images signed with a key in its db, and
// the firmware keeps db, KEK and PK in its variable store, a flash image
// that qemu maps next to the firmware code. Enrolling keys through the
// firmware's setup menu or with a UEFI tool in a first boot would make every
// test slower and depend on a guest program; writing the variables into a
// copy of the blank store is instant, needs no tools beyond Go, and gives
// the same bytes for the same keys. EnrollSecureBoot does that, with the
// variables Debian's pre-enrolled stores (OVMF_VARS_4M.snakeoil.fd) show the
// firmware needs for Secure Boot to be enforced.
//
// The file is an EDK2 firmware volume (EFI_FIRMWARE_VOLUME_HEADER, file
// system gEfiSystemNvDataFvGuid) that starts with a variable store
// (VARIABLE_STORE_HEADER of format gEfiAuthenticatedVariableGuid), followed
// by the fault-tolerant write areas, which this package never changes. The
// store is a log: the firmware appends a record for every write and retires
// older ones by clearing bits of their state byte, as flash allows without
// erasing, so Parse reports every record with its state and Store.Get
// returns the live one. Store.Set writes the same way, so that a store
// written here looks to the firmware like one it wrote itself.
//
// Parse reads files that a VM has written and may be damaged or crafted: it
// checks every header and size against the file before using it, and says
// which check failed where.
package ovmfvars
