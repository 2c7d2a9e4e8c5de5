// Package tpm seals secrets to a machine's TPM 2.0 and its boot state, and
// reads the TPM's random number generator and platform configuration
// registers (PCRs).
//
// A node keeps the secrets it needs to rejoin its cluster and unlock its
// data partition on its EFI system partition, which anyone holding the disk
// can read. Sealed by this package, they are useless without the TPM of the
// machine that sealed them, and that TPM releases them only while its PCRs
// hold the values they had when the secrets were sealed: only on the same
// machine, booted the same way.
//
// # Sealing
//
// Seal encrypts the data with a fresh AES-256-GCM key and seals that key in
// the TPM: it creates a sealed data object whose authorization policy is
// TPM2_PolicyPCR over the current values of the chosen PCRs (SHA-256 bank),
// under the machine's storage root key (SRK). The TPM encrypts the object
// with the SRK, so that only this TPM can load it again, and will only
// unseal it in a policy session whose PCRs match. Envelope encryption keeps
// the size of the data free: a TPM seals at most 128 bytes.
//
// The SRK is not stored anywhere: it is derived again for every call from
// the TPM's owner hierarchy, with the ECC P-256 SRK template of the TCG's
// provisioning guidance, which the TPM turns into the same key every time
// until the owner hierarchy is cleared (TPM2_Clear, "reset the TPM" in the
// firmware). So the blobs survive reboots and need no TPM NV storage, and
// clearing the TPM makes every blob sealed before useless, as it should.
//
// The sessions that carry the key to and from the TPM are salted with the
// SRK and encrypt the key with AES-128-CFB, so that someone listening on
// the bus of a discrete TPM does not learn it.
//
// # Errors
//
// Unseal tells why it fails with sentinel errors, wrapped with details:
// ErrWrongTPM when the blob was sealed by another TPM (its SRK differs),
// ErrPolicyMismatch when the PCRs changed (naming the PCRs that differ from
// their sealed values), and ErrInvalidBlob when the blob is not one Seal
// made. The format of a blob is versioned and parsed as untrusted input; see
// blob.go.
//
// # Which PCRs: why a node seals to PCR 7 alone
//
// PCR 7 holds the Secure Boot policy: whether Secure Boot is on, the
// platform key, the key exchange keys, the allowed (db) and forbidden (dbx)
// signature databases, and which db entry verified each image the firmware
// ran. On a node it therefore says "this machine booted with Secure Boot
// enforcing these keys, and ran code signed by them". Turning Secure Boot
// off, enrolling another key to boot other code, or booting something the
// firmware verified with a different certificate all change it, and with it
// the node loses its secrets, which is the point.
//
// The other PCRs measure what was booted byte for byte: firmware code and
// settings (0-3), the boot loader and kernel image (4, and 11 for a UKI),
// the boot loader's configuration (5). Binding to them would tie the
// secrets to one exact firmware and one exact node image, so every A/B
// update and every firmware update would lock the node out of its data
// unless it resealed in advance for values it can only predict. PCR 7 stays
// the same across updates signed with the same key, which is what an A/B
// update is. The price is that any image signed with that key unseals,
// including an older, vulnerable one. Revoking such an image through dbx
// changes PCR 7 too, so that a dbx update has to be followed by resealing
// from a source other than the TPM, such as the cluster.
package tpm
