package localstorage

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/node/core/localstorage/declarative"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/tpm"
)

// SealedConfigurationPCRs are the PCRs the sealed configuration is sealed
// to: PCR 7 alone, the Secure Boot policy, so that the node's secrets
// survive its A/B updates but not a change of its Secure Boot keys (see
// metropolis.dev/osbase/tpm for the reasoning).
var SealedConfigurationPCRs = []int{7}

// ErrNoSealedConfiguration means that the ESP holds no sealed
// configuration: the node has not been set up yet.
var ErrNoSealedConfiguration = errors.New("localstorage: the ESP holds no sealed configuration")

// SealedConfigurationFile is the file on the ESP holding a
// SealedConfiguration: sealed by the TPM to SealedConfigurationPCRs when
// the node uses its TPM, a plain protobuf otherwise.
type SealedConfigurationFile struct {
	declarative.File
}

// Seal writes sc to the file, sealed by t, or in the clear if t is nil.
func (f *SealedConfigurationFile) Seal(sc *ppb.SealedConfiguration, t *tpm.TPM) error {
	b, err := proto.Marshal(sc)
	if err != nil {
		return fmt.Errorf("localstorage: sealing configuration: %w", err)
	}
	if t != nil {
		sealed, err := t.Seal(b, SealedConfigurationPCRs)
		clear(b)
		if err != nil {
			return fmt.Errorf("localstorage: sealing configuration: %w", err)
		}
		b = sealed
	}
	if err := f.Write(b, 0o600); err != nil {
		return fmt.Errorf("localstorage: writing sealed configuration: %w", err)
	}
	return nil
}

// Unseal reads the sealed configuration: with t, it must be sealed by t,
// and Unseal fails with an error matching tpm.ErrPolicyMismatch if the
// node's Secure Boot state changed since, tpm.ErrWrongTPM if it was sealed
// by another TPM; without t, it must be plain. Nothing else is touched. A
// missing file is ErrNoSealedConfiguration.
func (f *SealedConfigurationFile) Unseal(t *tpm.TPM) (*ppb.SealedConfiguration, error) {
	b, err := f.Read()
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoSealedConfiguration
	}
	if err != nil {
		return nil, fmt.Errorf("localstorage: reading sealed configuration: %w", err)
	}
	if t != nil {
		plain, err := t.Unseal(b)
		if err != nil {
			return nil, fmt.Errorf("localstorage: unsealing %s: %w", f.FullPath(), err)
		}
		b = plain
		defer clear(b)
	}
	var sc ppb.SealedConfiguration
	if err := proto.Unmarshal(b, &sc); err != nil {
		return nil, fmt.Errorf("localstorage: %s holds no SealedConfiguration: %w", f.FullPath(), err)
	}
	return &sc, nil
}
