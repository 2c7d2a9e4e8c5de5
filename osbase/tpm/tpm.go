package tpm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"
	"github.com/google/go-tpm/tpm2/transport/linuxtpm"
)

// DefaultPath is the kernel's TPM device with its resource manager, which
// flushes the objects and sessions of a connection when it is closed, so
// that a process that dies cannot fill the TPM's few slots.
const DefaultPath = "/dev/tpmrm0"

// Errors of Unseal, wrapped with details; test for them with errors.Is.
var (
	// ErrPolicyMismatch means that PCRs the data is sealed to hold other
	// values than when it was sealed: the machine booted differently.
	ErrPolicyMismatch = errors.New("tpm: the PCRs differ from those the data was sealed to")
	// ErrWrongTPM means that the data was sealed by another TPM, or by
	// this one before its owner hierarchy was cleared.
	ErrWrongTPM = errors.New("tpm: the data was sealed by a different TPM, or before this TPM was cleared")
	// ErrInvalidBlob means that the blob is not one that Seal made, or
	// was damaged.
	ErrInvalidBlob = errors.New("tpm: invalid sealed blob")
)

// TPM is an open TPM 2.0. Its methods may be called concurrently; they
// run one at a time.
type TPM struct {
	mu  sync.Mutex
	dev transport.TPMCloser
}

// Open opens the TPM at path, usually DefaultPath.
func Open(path string) (*TPM, error) {
	dev, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tpm: opening %s: %w", path, err)
	}
	return &TPM{dev: dev}, nil
}

// Close closes the TPM device.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.dev.Close()
}

// maxRandomPerCall is what every TPM returns from one TPM2_GetRandom: the
// size of its largest digest, at least SHA-256's.
const maxRandomPerCall = 32

// GenerateRandom returns n bytes from the TPM's random number generator.
func (t *TPM) GenerateRandom(n int) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("tpm: %d random bytes requested", n)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]byte, 0, n)
	for len(out) < n {
		rsp, err := tpm2.GetRandom{BytesRequested: uint16(min(n-len(out), maxRandomPerCall))}.Execute(t.dev)
		if err != nil {
			return nil, fmt.Errorf("tpm: getting random bytes: %w", err)
		}
		if len(rsp.RandomBytes.Buffer) == 0 {
			return nil, errors.New("tpm: getting random bytes: the TPM returned none")
		}
		out = append(out, rsp.RandomBytes.Buffer[:min(len(rsp.RandomBytes.Buffer), n-len(out))]...)
	}
	return out, nil
}

// checkPCRs returns the PCR indices sorted, after checking that they are
// distinct and below numPCRs.
func checkPCRs(pcrs []int) ([]int, error) {
	if len(pcrs) == 0 {
		return nil, errors.New("no PCRs given")
	}
	sorted := slices.Sorted(slices.Values(pcrs))
	for i, p := range sorted {
		if p < 0 || p >= numPCRs {
			return nil, fmt.Errorf("PCR %d does not exist (PCRs are 0-%d)", p, numPCRs-1)
		}
		if i > 0 && sorted[i-1] == p {
			return nil, fmt.Errorf("PCR %d is given twice", p)
		}
	}
	return sorted, nil
}

// ReadPCRs returns the values of the given PCRs of the SHA-256 bank.
func (t *TPM) ReadPCRs(pcrs []int) (map[int][]byte, error) {
	sorted, err := checkPCRs(pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: reading PCRs: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	values, err := t.readPCRs(sorted)
	if err != nil {
		return nil, err
	}
	m := make(map[int][]byte, len(sorted))
	for i, p := range sorted {
		m[p] = values[i]
	}
	return m, nil
}

// maxPCRsPerRead is how many PCR values TPM2_PCR_Read returns at most: a
// TPML_DIGEST holds eight.
const maxPCRsPerRead = 8

// readPCRs returns the values of the given PCRs, sorted, in their order.
func (t *TPM) readPCRs(pcrs []int) ([][]byte, error) {
	var values [][]byte
	for chunk := range slices.Chunk(pcrs, maxPCRsPerRead) {
		sel := pcrSelection(chunk)
		rsp, err := tpm2.PCRRead{PCRSelectionIn: sel}.Execute(t.dev)
		if err != nil {
			return nil, fmt.Errorf("tpm: reading PCRs %v: %w", chunk, err)
		}
		// A TPM leaves out the PCRs of a bank it does not have.
		got := rsp.PCRSelectionOut.PCRSelections
		if len(got) != 1 || got[0].Hash != tpm2.TPMAlgSHA256 || !slices.Equal(got[0].PCRSelect, sel.PCRSelections[0].PCRSelect) || len(rsp.PCRValues.Digests) != len(chunk) {
			return nil, fmt.Errorf("tpm: reading PCRs %v: the TPM returned %d values, not those of the SHA-256 bank asked for (is the bank enabled?)", chunk, len(rsp.PCRValues.Digests))
		}
		for _, d := range rsp.PCRValues.Digests {
			if len(d.Buffer) != pcrSize {
				return nil, fmt.Errorf("tpm: reading PCRs %v: a SHA-256 PCR value has %d bytes", chunk, len(d.Buffer))
			}
			values = append(values, d.Buffer)
		}
	}
	return values, nil
}

// srk is the storage root key, loaded.
type srk struct {
	handle tpm2.TPMHandle
	name   tpm2.TPM2BName
	public tpm2.TPMTPublic
}

// loadSRK derives the storage root key from the owner hierarchy. The
// caller flushes it with flush.
func (t *TPM) loadSRK() (*srk, error) {
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHOwner,
		InPublic:      tpm2.New2B(tpm2.ECCSRKTemplate),
	}.Execute(t.dev)
	if err != nil {
		return nil, fmt.Errorf("tpm: deriving the storage root key: %w", err)
	}
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		t.flush(rsp.ObjectHandle)
		return nil, fmt.Errorf("tpm: deriving the storage root key: its public area: %w", err)
	}
	return &srk{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}, nil
}

// flush removes a transient object from the TPM. Failing to is harmless
// beyond the process: the resource manager flushes what a connection left
// when it is closed.
func (t *TPM) flush(h tpm2.TPMHandle) {
	tpm2.FlushContext{FlushHandle: h}.Execute(t.dev)
}

// sealedKeySize is the size of the AES-256 key Seal seals in the TPM.
const sealedKeySize = 32

// Seal encrypts data so that only this TPM can decrypt it again, with
// Unseal, and only while the given PCRs (SHA-256 bank) have the values they
// have now. See the package documentation for how.
func (t *TPM) Seal(data []byte, pcrs []int) ([]byte, error) {
	sorted, err := checkPCRs(pcrs)
	if err != nil {
		return nil, fmt.Errorf("tpm: sealing: %w", err)
	}
	if len(data) > MaxDataSize {
		return nil, fmt.Errorf("tpm: sealing: %d bytes of data, more than the %d allowed", len(data), MaxDataSize)
	}
	key := make([]byte, sealedKeySize)
	rand.Read(key) // Never fails, see crypto/rand.Read.
	defer clear(key)

	t.mu.Lock()
	defer t.mu.Unlock()
	values, err := t.readPCRs(sorted)
	if err != nil {
		return nil, err
	}
	policy, err := pcrPolicy(sorted, values)
	if err != nil {
		return nil, fmt.Errorf("tpm: sealing: computing the PCR policy: %w", err)
	}
	s, err := t.loadSRK()
	if err != nil {
		return nil, err
	}
	defer t.flush(s.handle)
	rsp, err := tpm2.Create{
		ParentHandle: tpm2.AuthHandle{
			Handle: s.handle,
			Name:   s.name,
			// The session encrypts the key on its way to the TPM.
			Auth: tpm2.HMAC(tpm2.TPMAlgSHA256, 16, tpm2.AESEncryption(128, tpm2.EncryptIn), tpm2.Salted(s.handle, s.public)),
		},
		InSensitive: tpm2.TPM2BSensitiveCreate{Sensitive: &tpm2.TPMSSensitiveCreate{
			Data: tpm2.NewTPMUSensitiveCreate(&tpm2.TPM2BSensitiveData{Buffer: key}),
		}},
		InPublic: tpm2.New2B(tpm2.TPMTPublic{
			Type:    tpm2.TPMAlgKeyedHash,
			NameAlg: tpm2.TPMAlgSHA256,
			ObjectAttributes: tpm2.TPMAObject{
				FixedTPM:    true,
				FixedParent: true,
				// Only the policy authorizes, and its failures do
				// not count towards the TPM's dictionary attack
				// lockout: a node booted differently must not lock
				// its TPM by trying.
				UserWithAuth:    false,
				AdminWithPolicy: true,
				NoDA:            true,
			},
			AuthPolicy: tpm2.TPM2BDigest{Buffer: policy},
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgKeyedHash, &tpm2.TPMSKeyedHashParms{
				Scheme: tpm2.TPMTKeyedHashScheme{Scheme: tpm2.TPMAlgNull},
			}),
		}),
	}.Execute(t.dev)
	if err != nil {
		return nil, fmt.Errorf("tpm: sealing: creating the sealed object: %w", err)
	}

	b := &sealedBlob{
		pcrs:    sorted,
		values:  values,
		srkName: s.name.Buffer,
		public:  rsp.OutPublic.Bytes(),
		private: rsp.OutPrivate.Buffer,
		nonce:   make([]byte, nonceSize),
	}
	rand.Read(b.nonce)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("tpm: sealing: %w", err)
	}
	b.ciphertext = aead.Seal(nil, b.nonce, data, b.header())
	return b.marshal(), nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Unseal decrypts a blob that Seal made with this TPM, if the PCRs it was
// sealed to have the values they had then. Its errors match ErrWrongTPM,
// ErrPolicyMismatch or ErrInvalidBlob where that is why it failed.
func (t *TPM) Unseal(blob []byte) ([]byte, error) {
	b, err := parseBlob(blob)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s, err := t.loadSRK()
	if err != nil {
		return nil, err
	}
	defer t.flush(s.handle)
	if string(s.name.Buffer) != string(b.srkName) {
		return nil, fmt.Errorf("%w: it was sealed under the storage root key named %x, this TPM's is %x", ErrWrongTPM, b.srkName, s.name.Buffer)
	}
	loaded, err := tpm2.Load{
		ParentHandle: tpm2.AuthHandle{Handle: s.handle, Name: s.name, Auth: tpm2.PasswordAuth(nil)},
		InPrivate:    tpm2.TPM2BPrivate{Buffer: b.private},
		InPublic:     tpm2.BytesAs2B[tpm2.TPMTPublic](b.public),
	}.Execute(t.dev)
	if err != nil {
		// The SRK is this TPM's, so the TPM refusing the object means
		// the blob was changed.
		return nil, fmt.Errorf("%w: the TPM refuses to load its sealed object: %w", ErrInvalidBlob, err)
	}
	defer t.flush(loaded.ObjectHandle)

	sel := pcrSelection(b.pcrs)
	rsp, err := tpm2.Unseal{
		ItemHandle: tpm2.AuthHandle{
			Handle: loaded.ObjectHandle,
			Name:   loaded.Name,
			Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16, func(dev transport.TPM, session tpm2.TPMISHPolicy, _ tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicyPCR{PolicySession: session, Pcrs: sel}.Execute(dev)
				return err
			},
				// The session encrypts the key on its way back.
				tpm2.AESEncryption(128, tpm2.EncryptOut), tpm2.Salted(s.handle, s.public)),
		},
	}.Execute(t.dev)
	if errors.Is(err, tpm2.TPMRCPolicyFail) || errors.Is(err, tpm2.TPMRCPCRChanged) {
		return nil, fmt.Errorf("%w: %s", ErrPolicyMismatch, t.describePCRChanges(b))
	}
	if err != nil {
		return nil, fmt.Errorf("tpm: unsealing the key: %w", err)
	}
	key := rsp.OutData.Buffer
	defer clear(key)
	aead, err := newAEAD(key)
	if err != nil {
		return nil, fmt.Errorf("%w: the sealed key: %w", ErrInvalidBlob, err)
	}
	data, err := aead.Open(nil, b.nonce, b.ciphertext, b.header())
	if err != nil {
		return nil, fmt.Errorf("%w: decrypting the data: %w", ErrInvalidBlob, err)
	}
	return data, nil
}

// describePCRChanges names the PCRs of b whose values differ from those
// sealed.
func (t *TPM) describePCRChanges(b *sealedBlob) string {
	now, err := t.readPCRs(b.pcrs)
	if err != nil {
		return fmt.Sprintf("sealed to PCRs %v, which cannot be read now: %v", b.pcrs, err)
	}
	var changed []string
	for i, p := range b.pcrs {
		if string(now[i]) != string(b.values[i]) {
			changed = append(changed, fmt.Sprintf("PCR %d was %x, is %x", p, b.values[i], now[i]))
		}
	}
	if len(changed) == 0 {
		return fmt.Sprintf("PCRs %v hold their sealed values again", b.pcrs)
	}
	return strings.Join(changed, "; ")
}
