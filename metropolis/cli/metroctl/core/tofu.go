package core

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
)

// ErrCANotTrusted is wrapped by the errors of TrustedCA when the cluster's
// CA was presented but not accepted.
var ErrCANotTrusted = errors.New("cluster CA not trusted")

// TrustPolicy decides whether to trust a cluster CA seen for the first time.
// The ways to accept it are tried in the order of the fields.
type TrustPolicy struct {
	// Fingerprint, if set, is that of the only CA to trust (in any form
	// ParseFingerprint accepts). That CA is trusted without asking, any
	// other refused. It also has to match an already trusted CA.
	Fingerprint string
	// AcceptAny trusts whatever CA the cluster presents, without asking: for
	// test clusters on networks nobody else can tamper with.
	AcceptAny bool
	// Confirm asks the operator whether to trust ca, which endpoint
	// presented. Nil means that nobody can be asked.
	Confirm func(ca *x509.Certificate, endpoint string) (bool, error)
}

// TrustedCA returns the cluster CA that cfg trusts. If it trusts none yet,
// the CA is fetched from the cluster, and if it is accepted, stored in cfg:
// because it has the expected fingerprint, because it issued the owner
// certificate in cfg, because the policy accepts any, or because the
// operator confirmed it, in that order. Otherwise the error wraps
// ErrCANotTrusted.
func (c *Cluster) TrustedCA(ctx context.Context, cfg Config, policy TrustPolicy) (*x509.Certificate, error) {
	var want []byte
	if policy.Fingerprint != "" {
		var err error
		if want, err = ParseFingerprint(policy.Fingerprint); err != nil {
			return nil, err
		}
	}
	stored, err := cfg.TrustedCA()
	if err == nil {
		if want != nil && !matchesFingerprint(stored, want) {
			return nil, fmt.Errorf("%w: the trusted CA in %s is %s, not the expected %s", ErrCANotTrusted, cfg.TrustedCAPath(), Fingerprint(stored), policy.Fingerprint)
		}
		return stored, nil
	}
	if !errors.Is(err, ErrNoTrustedCA) {
		return nil, err
	}

	c.progressf("Fetching the cluster CA...")
	ca, endpoint, err := c.FetchCA(ctx)
	if err != nil {
		return nil, err
	}
	reason, err := c.decide(ca, endpoint, cfg, policy, want)
	if err != nil {
		return nil, err
	}
	if err := cfg.SaveTrustedCA(ca); err != nil {
		return nil, err
	}
	c.progressf("Trusting cluster CA %s from %s (%s); saved to %s.", Fingerprint(ca), endpoint, reason, cfg.TrustedCAPath())
	return ca, nil
}

// decide returns why ca is to be trusted, or an error if it is not.
func (c *Cluster) decide(ca *x509.Certificate, endpoint string, cfg Config, policy TrustPolicy, want []byte) (string, error) {
	if want != nil {
		if matchesFingerprint(ca, want) {
			return "it has the expected fingerprint", nil
		}
		return "", fmt.Errorf("%w: %s presents CA %s, not the expected %s", ErrCANotTrusted, endpoint, Fingerprint(ca), policy.Fingerprint)
	}
	// An owner certificate can only have come from the cluster, so the CA
	// that issued it is the cluster's.
	if owner, err := cfg.ownerCertificateLeaf(); err == nil && owner.CheckSignatureFrom(ca) == nil {
		return "it issued the owner certificate", nil
	}
	if policy.AcceptAny {
		return "trusted on first use without asking", nil
	}
	if policy.Confirm == nil {
		return "", fmt.Errorf("%w: %s presents CA %s, and nobody was asked whether to trust it", ErrCANotTrusted, endpoint, Fingerprint(ca))
	}
	ok, err := policy.Confirm(ca, endpoint)
	if err != nil {
		return "", fmt.Errorf("asking whether to trust the cluster CA: %w", err)
	}
	if !ok {
		return "", fmt.Errorf("%w: %s presents CA %s, which was refused", ErrCANotTrusted, endpoint, Fingerprint(ca))
	}
	return "confirmed by the operator", nil
}
