// Package secureboot signs UEFI executables for Secure Boot and manages the
// keys it signs with.
//
// Sign writes an Authenticode signature in pure Go rather than running
// sbsign, because sbsign puts the time of signing into the signature, so
// the same image signed twice with the same key differs. Sign's signature
// carries no time, and RSA PKCS #1 v1.5 signatures are deterministic, so a
// build signed with the same key is reproducible byte for byte. The format
// follows what sbsign writes, which UEFI firmware and sbverify accept; the
// tests check it with sbverify.
//
// Keys are RSA keys of at least 2048 bits with an X.509 certificate. UEFI
// firmware verifies Authenticode signatures made with RSA and SHA-256 (the
// UEFI specification requires RSA-2048 support, and EDK2, the firmware of
// OVMF and most PCs, implements little else), so the ed25519 keys Metropolis
// uses elsewhere cannot sign boot images.
//
// Without a key from the operator, the build signs with a development key
// that EnsureDevKey creates once per machine and announces each time it is
// used, so that nobody ships a development build unknowingly. Next to the
// key it writes the certificate in DER and as an EFI signature list, the
// forms in which firmware enrolls a key as PK, KEK or db entry.
package secureboot
