package main

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"metropolis.dev/metropolis/cli/metroctl/core"
	"metropolis.dev/metropolis/node/core/identity"
	"metropolis.dev/metropolis/node/core/rpc"
	apb "metropolis.dev/metropolis/proto/api"
	cpb "metropolis.dev/metropolis/proto/common"
)

func newClusterCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Take ownership of and configure the cluster",
	}
	cmd.AddCommand(
		newInitOwnerCommand(e),
		newTakeOwnershipCommand(e),
		newConfigureCommand(e),
	)
	return cmd
}

func newInitOwnerCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "init-owner",
		Short: "Create the owner key, if there is none, and print its public key",
		Long: `Creates the owner's private key in the configuration directory, unless it
exists already, and prints its public key (hex).

A new cluster is bootstrapped with the public key of its owner (see
'metroctl node params --bootstrap'); once it runs, the holder of the private
key takes ownership of it with 'metroctl cluster takeownership'.`,
		Example: `  metroctl cluster init-owner
  metroctl --config ./test-cluster cluster init-owner`,
		Args: args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := e.config()
			key, created, err := cfg.EnsureOwnerKey()
			if err != nil {
				return err
			}
			if created {
				e.statusf("Created owner key %s.", cfg.OwnerKeyPath())
			} else {
				e.statusf("Using existing owner key %s.", cfg.OwnerKeyPath())
			}
			pub := hex.EncodeToString(key.Public().(ed25519.PublicKey))
			return e.writeOutput(func(w io.Writer) error {
				if e.json() {
					return core.WriteJSON(w, map[string]string{"owner_public_key": pub})
				}
				_, err := fmt.Fprintln(w, pub)
				return err
			})
		},
	}
}

func newTakeOwnershipCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "takeownership [endpoint...]",
		Short: "Become the owner of a newly bootstrapped cluster",
		Long: `Proves to a newly bootstrapped cluster that this configuration holds the owner
key it was bootstrapped with, and stores the owner certificate the cluster
issues in return. All other commands authenticate with that certificate.

The first connection to the cluster fetches its CA and asks whether to trust
it (see --accept-ca and --trust-on-first-use). Endpoints may be given as
arguments or with --endpoints. Taking ownership again is harmless: the cluster
issues the same certificate.`,
		Example: `  metroctl --endpoints 10.1.0.2 cluster takeownership
  metroctl cluster takeownership 10.1.0.2 --accept-ca SHA256:3f2a...`,
		RunE: func(cmd *cobra.Command, endpoints []string) error {
			ctx := cmd.Context()
			cfg := e.config()
			key, err := cfg.OwnerKey()
			if errors.Is(err, core.ErrNoOwnerKey) {
				return fmt.Errorf("%w; create one with 'metroctl cluster init-owner' and bootstrap the cluster with it ('metroctl node params --bootstrap')", err)
			}
			if err != nil {
				return err
			}
			cl, err := e.cluster(endpoints...)
			if err != nil {
				return err
			}
			ca, err := cl.TrustedCA(ctx, cfg, e.trustPolicy())
			if err != nil {
				return err
			}
			e.statusf("Taking ownership of the cluster...")
			cert, err := takeOwnership(ctx, cl, ca, key)
			if err != nil {
				return err
			}
			if err := cfg.SaveOwnerCertificate(cert); err != nil {
				return err
			}
			e.statusf("You now own the cluster. The owner certificate is saved in %s.", cfg.OwnerCertificatePath())
			return nil
		},
	}
}

// takeOwnership escrows the owner certificate (DER) for key from the
// cluster with CA ca.
func takeOwnership(ctx context.Context, cl *core.Cluster, ca *x509.Certificate, key ed25519.PrivateKey) ([]byte, error) {
	creds, err := rpc.NewEphemeralCredentials(key, rpc.WantRemoteCluster(ca))
	if err != nil {
		return nil, err
	}
	conn, err := cl.DialLeader(creds, ca)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	cert, err := rpc.RetrieveOwnerCertificate(ctx, apb.NewAAAClient(conn), key)
	if status.Code(err) == codes.PermissionDenied {
		return nil, fmt.Errorf("the cluster refused the owner key; it was bootstrapped with another one: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("taking ownership: %w", err)
	}
	if _, err := identity.VerifyUserInCluster(cert.Leaf, ca); err != nil {
		return nil, fmt.Errorf("the cluster issued an unusable owner certificate: %w", err)
	}
	return cert.Leaf.Raw, nil
}

func newConfigureCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "configure",
		Short: "Show or change the cluster configuration",
		Long: `Shows or changes the cluster-wide configuration, field by field.

Fields:
` + configFieldHelp(),
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "get [field]",
		Short: "Show a field of the cluster configuration, or all of them",
		Example: `  metroctl cluster configure get
  metroctl cluster configure get kubernetes.node_labels_to_synchronize`,
		Args: args(0, 1, "at most one field name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			fields := configFields
			if len(args) == 1 {
				f, err := findConfigField(args[0])
				if err != nil {
					return err
				}
				fields = []configField{f}
			}
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			info, err := s.mgmt.GetClusterInfo(cmd.Context(), &apb.GetClusterInfoRequest{})
			if err != nil {
				return fmt.Errorf("getting cluster configuration: %w", err)
			}
			return e.writeConfigFields(fields, info.ClusterConfiguration, len(args) == 1)
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "set field [value...]",
		Short: "Change a field of the cluster configuration",
		Long: `Replaces the value of a field of the cluster configuration. List fields take
their new elements as arguments; no arguments clear them.

Changeable fields:
` + configFieldHelp(),
		Example: `  # Synchronize all labels under example.com/ to Kubernetes nodes:
  metroctl cluster configure set kubernetes.node_labels_to_synchronize '^example\.com/'`,
		Args: args(1, -1, "a field name and its values"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := findConfigField(args[0])
			if err != nil {
				return err
			}
			if f.set == nil {
				return fmt.Errorf("%s is fixed at bootstrap and cannot be changed", f.name)
			}
			newConfig, err := f.set(args[1:])
			if err != nil {
				return err
			}
			s, err := e.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			res, err := s.mgmt.ConfigureCluster(cmd.Context(), &apb.ConfigureClusterRequest{
				NewConfig:  newConfig,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{f.name}},
			})
			if err != nil {
				return fmt.Errorf("configuring cluster: %w", err)
			}
			e.statusf("Changed %s.", f.name)
			return e.writeConfigFields([]configField{f}, res.ResultingConfig, true)
		},
	})
	return cmd
}

// configField is a field of the cluster configuration that metroctl shows
// and, if set is not nil, changes.
type configField struct {
	name string
	help string
	get  func(*cpb.ClusterConfiguration) []string
	// set returns a configuration with the field set to values.
	set func(values []string) (*cpb.ClusterConfiguration, error)
}

var configFields = []configField{
	{
		name: "cluster_domain",
		help: "the cluster's DNS domain (fixed at bootstrap)",
		get:  func(c *cpb.ClusterConfiguration) []string { return []string{c.GetClusterDomain()} },
	},
	{
		name: "tpm_mode",
		help: "whether nodes must use a TPM (fixed at bootstrap)",
		get: func(c *cpb.ClusterConfiguration) []string {
			return []string{enumName(c.GetTpmMode().String(), "TPM_MODE_")}
		},
	},
	{
		name: "storage_security_policy",
		help: "how nodes must protect their data (fixed at bootstrap)",
		get: func(c *cpb.ClusterConfiguration) []string {
			return []string{enumName(c.GetStorageSecurityPolicy().String(), "STORAGE_SECURITY_POLICY_")}
		},
	},
	{
		name: "kubernetes.node_labels_to_synchronize",
		help: "regular expressions selecting the node labels copied to Kubernetes nodes",
		get: func(c *cpb.ClusterConfiguration) []string {
			var res []string
			for _, l := range c.GetKubernetes().GetNodeLabelsToSynchronize() {
				res = append(res, l.Regexp)
			}
			return res
		},
		set: func(values []string) (*cpb.ClusterConfiguration, error) {
			k := &cpb.ClusterConfiguration_Kubernetes{}
			for _, v := range values {
				if _, err := regexp.Compile(v); err != nil {
					return nil, fmt.Errorf("invalid regular expression %q: %w", v, err)
				}
				k.NodeLabelsToSynchronize = append(k.NodeLabelsToSynchronize, &cpb.ClusterConfiguration_Kubernetes_NodeLabelsToSynchronize{Regexp: v})
			}
			return &cpb.ClusterConfiguration{Kubernetes: k}, nil
		},
	},
}

// enumName returns an enum value's name without its prefix, in the form
// used on command lines (lower case, dashes).
func enumName(name, prefix string) string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, prefix)), "_", "-")
}

func configFieldHelp() string {
	var b strings.Builder
	for _, f := range configFields {
		fmt.Fprintf(&b, "  %s: %s\n", f.name, f.help)
	}
	return b.String()
}

func findConfigField(name string) (configField, error) {
	var names []string
	for _, f := range configFields {
		if f.name == name {
			return f, nil
		}
		names = append(names, f.name)
	}
	return configField{}, fmt.Errorf("unknown configuration field %q; fields are %s", name, strings.Join(names, ", "))
}

// writeConfigFields writes the fields of config. A single field is written
// as its bare values, one per line; several as "name: values" lines.
func (e *env) writeConfigFields(fields []configField, config *cpb.ClusterConfiguration, single bool) error {
	return e.writeOutput(func(w io.Writer) error {
		if e.json() {
			values := map[string][]string{}
			for _, f := range fields {
				values[f.name] = append([]string{}, f.get(config)...)
			}
			return core.WriteJSON(w, values)
		}
		for _, f := range fields {
			values := f.get(config)
			var err error
			if single {
				for _, v := range values {
					if _, err = fmt.Fprintln(w, v); err != nil {
						return err
					}
				}
				continue
			}
			if _, err = fmt.Fprintf(w, "%s: %s\n", f.name, strings.Join(values, ", ")); err != nil {
				return err
			}
		}
		return nil
	})
}
