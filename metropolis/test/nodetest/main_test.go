package nodetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
	"metropolis.dev/osbase/net/netnstest"
	"metropolis.dev/osbase/test/qemu"
)

// repoRoot is the repository's root, relative to this package's directory,
// where tests run.
const repoRoot = "../../.."

// envImageDir passes the directory of the image built outside the network
// namespace to the tests running inside it.
const envImageDir = "NODETEST_IMAGE_DIR"

// buildTimeout is for the image build, about 15 s with the kernel package
// cached and a few minutes without (see qemu.Timeout).
const buildTimeout = 10 * time.Minute

// probeName is the name the node is asked to resolve
// (metropolis.dns_check), and probeAddress the test's DNS answer.
const (
	probeName    = "probe.nodetest.example"
	probeAddress = "10.99.0.77"
)

// imagePath is the image the tests boot, set in the namespace.
var imagePath string

func TestMain(m *testing.M) {
	if netnstest.InNamespace() || os.Geteuid() != 0 {
		// Without root the tests skip themselves (netnstest.Require).
		dir := os.Getenv(envImageDir)
		imagePath = filepath.Join(dir, "node.img")
		code := m.Run()
		if dir != "" {
			os.RemoveAll(dir)
		}
		os.Exit(code)
	}
	dir, err := os.MkdirTemp("", "nodetest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := buildImage(dir); err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "nodetest: building the image: %v\n", err)
		os.Exit(1)
	}
	os.Setenv(envImageDir, dir)
	// Runs the tests again in a new network namespace, which removes dir.
	netnstest.Main(m)
}

// buildImage builds the node image into dir, with parameters bootstrapping
// a cluster that requires a TPM and insecure storage, and a DNS check of
// probeName.
func buildImage(dir string) error {
	owner := make([]byte, 32)
	rand.Read(owner)
	params, err := proto.Marshal(&api.NodeParameters{Cluster: &api.NodeParameters_ClusterBootstrap_{
		ClusterBootstrap: &api.NodeParameters_ClusterBootstrap{
			OwnerPublicKey: owner,
			InitialClusterConfiguration: &cpb.ClusterConfiguration{
				ClusterDomain:         "cluster.internal",
				TpmMode:               cpb.ClusterConfiguration_TPM_MODE_REQUIRED,
				StorageSecurityPolicy: cpb.ClusterConfiguration_STORAGE_SECURITY_POLICY_NEEDS_INSECURE,
			},
		},
	}})
	if err != nil {
		return err
	}
	paramsPath := filepath.Join(dir, "params.pb")
	if err := os.WriteFile(paramsPath, params, 0o644); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemu.Timeout(buildTimeout))
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "run", "./build/mkimage",
		"-out", filepath.Join(dir, "node.img"),
		"-parameters", paramsPath,
		"-cmdline", "metropolis.dns_check="+probeName)
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkimage: %w\n%s", err, out)
	}
	return nil
}
