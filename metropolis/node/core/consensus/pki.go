package consensus

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"

	"metropolis.dev/osbase/pki"
)

// Where the consensus service keeps its own state in etcd. Both are outside
// of the namespaces handed to other services.
const (
	// pkiPrefix holds the peer CA, the peer certificates and the CRL.
	pkiPrefix = "namespaced:etcd-pki/"
	// membersPrefix holds a memberRecord per node, keyed by node ID.
	membersPrefix = "namespaced:etcd-members/"
)

// peerPKI is the cluster's peer PKI. Every member can issue and revoke peer
// certificates, as the CA's private key is kept in etcd (see osbase/pki for
// why that is acceptable).
type peerPKI struct {
	namespace pki.Namespace
	ca        *pki.Certificate
}

func newPeerPKI() *peerPKI {
	p := &peerPKI{namespace: pki.Namespaced(pkiPrefix)}
	p.ca = &pki.Certificate{
		Namespace: &p.namespace,
		Issuer:    pki.SelfSigned,
		Template:  pki.CA("Metropolis consensus peer CA"),
		Name:      "ca",
	}
	return p
}

// peerCertificate describes the peer certificate of the node nodeID as the
// etcd member memberID. Every time a node becomes a member it gets a new
// member ID and thus a new certificate, so a node can become a member again
// after its earlier certificate was revoked. ip only matters when the
// certificate is issued.
func (p *peerPKI) peerCertificate(nodeID string, memberID uint64, pub ed25519.PublicKey, ip net.IP) *pki.Certificate {
	// The same certificate serves both ends of peer connections.
	template := pki.Server([]string{nodeID}, []net.IP{ip})
	template.Subject.CommonName = nodeID
	template.ExtKeyUsage = append(template.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	return &pki.Certificate{
		Namespace: &p.namespace,
		Issuer:    p.ca,
		Template:  template,
		Name:      fmt.Sprintf("peer:%s:%016x", nodeID, memberID),
		Mode:      pki.CertificateExternal,
		PublicKey: pub,
	}
}

// memberRecord ties a node to the etcd member it was added as. etcd only
// learns a member's name (the node ID) once the member has started, so
// without it a member that has been added but never started could not be
// found by node ID, eg. to remove it again.
type memberRecord struct {
	MemberID  uint64            `json:"member_id"`
	PublicKey ed25519.PublicKey `json:"public_key"`
}

func memberRecordKey(nodeID string) string {
	return membersPrefix + nodeID
}

// issue issues the peer certificate of nodeID as member memberID, reachable at
// ip, and records the membership. It fails if the node is recorded as
// another member, eg. because it was added twice concurrently.
func (p *peerPKI) issue(ctx context.Context, kv clientv3.KV, nodeID string, memberID uint64, pub ed25519.PublicKey, ip net.IP) (*x509.Certificate, error) {
	der, err := p.peerCertificate(nodeID, memberID, pub, ip).Ensure(ctx, kv)
	if err != nil {
		return nil, fmt.Errorf("issuing peer certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing peer certificate: %w", err)
	}
	rec, err := json.Marshal(memberRecord{MemberID: memberID, PublicKey: pub})
	if err != nil {
		return nil, err
	}
	key := memberRecordKey(nodeID)
	res, err := kv.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(rec))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("recording membership: %w", err)
	}
	if !res.Succeeded {
		var existing memberRecord
		if err := json.Unmarshal(res.Responses[0].GetResponseRange().Kvs[0].Value, &existing); err != nil {
			return nil, fmt.Errorf("parsing membership record of %s: %w", nodeID, err)
		}
		if existing.MemberID != memberID {
			return nil, fmt.Errorf("%w: recorded as etcd member %x", ErrAlreadyMember, existing.MemberID)
		}
	}
	return cert, nil
}

// retire revokes the peer certificate of a node that is no longer a member
// and forgets its membership record.
func (p *peerPKI) retire(ctx context.Context, kv clientv3.KV, nodeID string, rec *memberRecord) error {
	der, err := p.peerCertificate(nodeID, rec.MemberID, rec.PublicKey, nil).Ensure(ctx, kv)
	if err != nil {
		return fmt.Errorf("loading peer certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parsing peer certificate: %w", err)
	}
	if err := p.ca.Revoke(ctx, kv, cert); err != nil {
		return err
	}
	if _, err := kv.Delete(ctx, memberRecordKey(nodeID)); err != nil {
		return fmt.Errorf("deleting membership record: %w", err)
	}
	return nil
}

// readMemberRecord returns the membership record of nodeID, or nil if there
// is none.
func readMemberRecord(ctx context.Context, kv clientv3.KV, nodeID string) (*memberRecord, error) {
	res, err := kv.Get(ctx, memberRecordKey(nodeID))
	if err != nil {
		return nil, fmt.Errorf("reading membership record: %w", err)
	}
	if len(res.Kvs) == 0 {
		return nil, nil
	}
	var rec memberRecord
	if err := json.Unmarshal(res.Kvs[0].Value, &rec); err != nil {
		return nil, fmt.Errorf("parsing membership record of %s: %w", nodeID, err)
	}
	return &rec, nil
}

// memberNames maps member IDs to the node IDs recorded for them.
func memberNames(ctx context.Context, kv clientv3.KV) (map[uint64]string, error) {
	res, err := kv.Get(ctx, membersPrefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("reading membership records: %w", err)
	}
	names := make(map[uint64]string, len(res.Kvs))
	for _, kv := range res.Kvs {
		var rec memberRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("parsing membership record %q: %w", kv.Key, err)
		}
		names[rec.MemberID] = string(kv.Key[len(membersPrefix):])
	}
	return names, nil
}

// pemBlock types of the files on disk.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"
	pemCRL         = "X509 CRL"
)

// havePeerFiles reports whether the peer credentials are on disk. They are
// written last when a member is set up, so their presence means that setup
// has finished.
func (f *files) havePeerFiles() (bool, error) {
	for _, path := range []string{f.caCert, f.peerCert, f.peerKey, f.crl} {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	return true, nil
}

// writePeerFiles writes the member's peer credentials and CRL for etcd. The
// CRL and the certificates are checked against ca first, so that a member
// never starts with credentials that cannot work.
func (f *files) writePeerFiles(ca, cert *x509.Certificate, key ed25519.PrivateKey, crlDER []byte) error {
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("peer certificate is not issued by the peer CA: %w", err)
	}
	if pub, ok := cert.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(key.Public()) {
		return errors.New("peer certificate is not issued for the node's private key")
	}
	crl, err := x509.ParseRevocationList(crlDER)
	if err != nil {
		return fmt.Errorf("parsing CRL: %w", err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("CRL is not signed by the peer CA: %w", err)
	}
	if pki.IsRevoked(crl, cert) {
		return errors.New("peer certificate is revoked")
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encoding private key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.caCert), 0o700); err != nil {
		return err
	}
	// The CRL goes first: etcd needs all of them, and havePeerFiles takes
	// their presence as the sign of a finished setup.
	for _, file := range []struct {
		path, typ string
		der       []byte
	}{
		{f.crl, pemCRL, crlDER},
		{f.caCert, pemCertificate, ca.Raw},
		{f.peerKey, pemPrivateKey, pkcs8},
		{f.peerCert, pemCertificate, cert.Raw},
	} {
		if err := writeFileAtomically(file.path, pem.EncodeToMemory(&pem.Block{Type: file.typ, Bytes: file.der})); err != nil {
			return err
		}
	}
	return nil
}

func (f *files) writeCRL(crlDER []byte) error {
	return writeFileAtomically(f.crl, pem.EncodeToMemory(&pem.Block{Type: pemCRL, Bytes: crlDER}))
}

// writeFileAtomically replaces the file at path with one holding data, so that
// readers like etcd, which reads the CRL on every peer connection, never see a
// partial file, and a crash never leaves one behind.
func writeFileAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
