package main

import (
	"path/filepath"

	"github.com/spf13/cobra"

	"metropolis.dev/metropolis/cli/metroctl/core"
)

func newCertCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cert",
		Short: "Manage the owner's certificate",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "export",
		Short: "Write the owner certificate and key into the current directory",
		Long: `Writes the owner certificate to ` + core.ExportedCertificateFile + ` and the owner's private key
(PKCS#8) to ` + core.ExportedKeyFile + `, both PEM, into the current directory, for tools that
take a client certificate as files. The key file is readable only by you;
existing files are not overwritten.`,
		Example: `  metroctl cert export`,
		Args:    args(0, 0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := e.config().ExportOwnerCredentials(e.workDir); err != nil {
				return err
			}
			e.statusf("Wrote the owner certificate to %s and its private key to %s.",
				filepath.Join(e.workDir, core.ExportedCertificateFile), filepath.Join(e.workDir, core.ExportedKeyFile))
			return nil
		},
	})
	return cmd
}
