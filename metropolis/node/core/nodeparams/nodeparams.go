// Package nodeparams finds and checks a node's parameters: the
// api.NodeParameters that tell a freshly installed node whether to
// bootstrap a new cluster or register into an existing one.
//
// Parameters come from one of two places, looked at in this order:
//
//  1. qemu's firmware configuration device (fw_cfg), as the file
//     opt/metropolis/parameters.pb, which Linux shows below
//     /sys/firmware/qemu_fw_cfg once the qemu_fw_cfg module is loaded.
//     Test and development VMs get their parameters this way, without
//     touching the disk image.
//  2. The file metropolis/parameters.pb on the EFI system partition, where
//     the installer puts them.
//
// When fw_cfg has parameters, the ESP is not looked at: whoever started
// the VM meant to override the image. Parameters found but unreadable or
// invalid are an error, never a reason to look at the next place, so that
// a typo does not silently select other parameters.
//
// Finding no parameters at all is not an error of its own kind: Read
// returns ErrAbsent. A node that has already joined a cluster keeps what
// it needs in its sealed configuration and does not need its parameters
// anymore, so the caller decides whether their absence matters.
//
// Validation checks what a node can check on its own before acting on the
// parameters, and says what is wrong in terms of the proto's fields.
package nodeparams

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/proto/api"
)

// Where parameters are found.
const (
	// FWCfgPath is the parameters file qemu passes through fw_cfg as
	// `-fw_cfg name=opt/metropolis/parameters.pb,file=...`, as Linux shows
	// it. qemu reserves names outside opt/ for itself.
	FWCfgPath = "/sys/firmware/qemu_fw_cfg/by_name/opt/metropolis/parameters.pb/raw"
	// ESPFile is the parameters file on the EFI system partition,
	// relative to the partition's root.
	ESPFile = "metropolis/parameters.pb"
)

// maxSize bounds a parameters file. Real ones are a few kilobytes (a
// certificate and a handful of addresses); a file much larger is not
// parameters and is not read into memory.
const maxSize = 1 << 20

// ErrAbsent is returned by Read when neither place has parameters.
var ErrAbsent = errors.New("no node parameters, neither in qemu fw_cfg nor on the EFI system partition")

// Loaded are valid parameters and where they were found.
type Loaded struct {
	Parameters *api.NodeParameters
	// Path is the file they were read from.
	Path string
}

// Read returns the parameters from the fw_cfg file at fwcfg if it exists,
// otherwise from the file at esp, validated. Either path may be empty to
// skip that place. It returns ErrAbsent if neither file exists.
func Read(fwcfg, esp string) (*Loaded, error) {
	for _, path := range []string{fwcfg, esp} {
		if path == "" {
			continue
		}
		b, err := readFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading node parameters: %w", err)
		}
		p, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("node parameters in %s: %w", path, err)
		}
		return &Loaded{Parameters: p, Path: path}, nil
	}
	return nil, ErrAbsent
}

// readFile reads at most maxSize bytes of path.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSize)
	}
	return b, nil
}

// Parse unmarshals and validates serialized parameters.
func Parse(b []byte) (*api.NodeParameters, error) {
	var p api.NodeParameters
	if err := proto.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("not a NodeParameters proto: %w", err)
	}
	if err := Validate(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// Validate checks that p either bootstraps a cluster or registers into
// one, with what that needs: a bootstrap needs the owner's ed25519 public
// key; a registration needs a ticket, the cluster's CA certificate (an
// ed25519 certificate authority) and a directory of at least one node,
// each with IP addresses.
func Validate(p *api.NodeParameters) error {
	switch c := p.GetCluster().(type) {
	case *api.NodeParameters_ClusterBootstrap_:
		return validateBootstrap(c.ClusterBootstrap)
	case *api.NodeParameters_ClusterRegister_:
		return validateRegister(c.ClusterRegister)
	case nil:
		return errors.New("neither cluster_bootstrap nor cluster_register is set: the node would not know what to do")
	default:
		return fmt.Errorf("unknown kind of cluster parameters %T", c)
	}
}

func validateBootstrap(b *api.NodeParameters_ClusterBootstrap) error {
	if b == nil {
		return errors.New("cluster_bootstrap is empty")
	}
	if n := len(b.OwnerPublicKey); n != ed25519.PublicKeySize {
		return fmt.Errorf("cluster_bootstrap.owner_public_key is %d bytes long, want an ed25519 public key of %d", n, ed25519.PublicKeySize)
	}
	return nil
}

func validateRegister(r *api.NodeParameters_ClusterRegister) error {
	if r == nil {
		return errors.New("cluster_register is empty")
	}
	if len(r.RegisterTicket) == 0 {
		return errors.New("cluster_register.register_ticket is empty")
	}
	if err := validateCA(r.CaCertificate); err != nil {
		return fmt.Errorf("cluster_register.ca_certificate: %w", err)
	}
	nodes := r.GetClusterDirectory().GetNodes()
	if len(nodes) == 0 {
		return errors.New("cluster_register.cluster_directory lists no nodes to register through")
	}
	for i, n := range nodes {
		if len(n.Addresses) == 0 {
			return fmt.Errorf("cluster_register.cluster_directory node %d (%q) has no addresses", i, n.Id)
		}
		for _, a := range n.Addresses {
			if _, err := netip.ParseAddr(a.Host); err != nil {
				return fmt.Errorf("cluster_register.cluster_directory node %d (%q): address %q is not an IP address", i, n.Id, a.Host)
			}
		}
	}
	return nil
}

// validateCA checks that der is an ed25519 certificate authority.
func validateCA(der []byte) error {
	if len(der) == 0 {
		return errors.New("missing")
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("not a DER X.509 certificate: %w", err)
	}
	if _, ok := cert.PublicKey.(ed25519.PublicKey); !ok {
		return fmt.Errorf("has a %T public key, want ed25519", cert.PublicKey)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("certificate %q is not a certificate authority (IsCA %v, key usage %#x)", cert.Subject, cert.IsCA, cert.KeyUsage)
	}
	return nil
}
