package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"metropolis.dev/metropolis/cli/metroctl/core"
	apb "metropolis.dev/metropolis/proto/api"
)

func newNodeParamsCommand(e *env) *cobra.Command {
	var (
		bootstrap, register bool
		b                   core.Bootstrap
		labels              []string
	)
	cmd := &cobra.Command{
		Use:   "params (--bootstrap --cluster domain | --register) -o file",
		Short: "Write the parameters a new node boots with",
		Long: `Writes the parameters (a binary metropolis.proto.api.NodeParameters) that
tell a freshly installed node what to do. Put them into the node's EFI system
partition as metropolis/parameters.pb, or hand them to a virtual machine
through qemu's fw_cfg.

--bootstrap: the node creates a new cluster owned by this configuration's
owner key (created if there is none). Take ownership once it runs.

--register: the node registers into the cluster (reached with --endpoints)
and waits for approval ('metroctl approve').`,
		Example: `  metroctl node params --bootstrap --cluster cluster.internal -o params.pb
  metroctl node params --bootstrap --cluster test.internal --tpm-mode disabled --storage-security needs-insecure -o params.pb
  metroctl --endpoints 10.1.0.2 node params --register --label rack=a12 -o params.pb`,
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if bootstrap == register {
				return usageError{cmd, errors.New("pass exactly one of --bootstrap and --register")}
			}
			if bootstrap && b.Domain == "" {
				return usageError{cmd, errors.New("--bootstrap needs --cluster with the new cluster's DNS domain, e.g. cluster.internal")}
			}
			for _, name := range []string{"cluster", "tpm-mode", "storage-security"} {
				if register && cmd.Flags().Changed(name) {
					return usageError{cmd, fmt.Errorf("--%s only applies to a new cluster (--bootstrap)", name)}
				}
			}
			if e.output == "" {
				return usageError{cmd, errors.New("pass -o with the file to write the parameters to")}
			}
			var params *apb.NodeParameters
			if bootstrap {
				cfg := e.config()
				key, created, err := cfg.EnsureOwnerKey()
				if err != nil {
					return err
				}
				if created {
					e.statusf("Created owner key %s.", cfg.OwnerKeyPath())
				}
				b.OwnerKey = key.Public().(ed25519.PublicKey)
				b.Labels = labels
				if params, err = core.BootstrapParameters(b); err != nil {
					return err
				}
			} else {
				s, err := e.connect(cmd.Context())
				if err != nil {
					return err
				}
				defer s.Close()
				if params, err = core.RegisterParameters(cmd.Context(), s.mgmt, labels); err != nil {
					return err
				}
			}
			data, err := proto.Marshal(params)
			if err != nil {
				return err
			}
			// The register ticket lets nodes into the approval queue; keep it
			// from other users.
			if err := os.WriteFile(e.output, data, 0o600); err != nil {
				return fmt.Errorf("writing node parameters: %w", err)
			}
			e.statusf("Wrote node parameters to %s.", e.output)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&bootstrap, "bootstrap", false, "the node bootstraps a new cluster")
	f.BoolVar(&register, "register", false, "the node registers into an existing cluster")
	f.StringVar(&b.Domain, "cluster", "", "DNS domain of the new cluster (with --bootstrap), e.g. cluster.internal")
	f.StringVar(&b.TPMMode, "tpm-mode", "required", "whether nodes of the new cluster must use a TPM: required, best-effort or disabled")
	f.StringVar(&b.StorageSecurity, "storage-security", "needs-encryption-and-authentication", "how nodes of the new cluster must protect their data: permissive, needs-encryption, needs-encryption-and-authentication or needs-insecure")
	f.StringSliceVar(&labels, "label", nil, "label of the node, key=value (repeatable)")
	return cmd
}
