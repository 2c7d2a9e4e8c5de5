// Command ovmfvars writes an OVMF variable store with Metropolis' Secure Boot
// key enrolled, so that a VM started with it boots only images signed with
// that key, or lists the variables of a store.
//
// Usage:
//
//	go run ./build/ovmfvars -template /usr/share/OVMF/OVMF_VARS_4M.fd -cert cert.der -out vars.fd
//	go run ./build/ovmfvars -list vars.fd
//
// The certificate (DER or PEM) is enrolled as PK, KEK and db entry, each an
// EFI signature list owned by Metropolis (see secureboot.SignatureList), and
// Secure Boot is switched on (see ovmfvars.EnrollSecureBoot). The template
// must be a store in setup mode, such as Debian's OVMF_VARS_4M.fd (package
// ovmf). The output depends only on the template and the certificate.
package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/osbase/efi/ovmfvars"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("ovmfvars: ")
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		// Usage was asked for and has been printed.
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run is the whole command, writing a listing to stdout and usage messages
// to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("ovmfvars", flag.ContinueOnError)
	flags.SetOutput(stderr)
	template := flags.String("template", defaultTemplate, "variable store in setup mode to start from")
	certPath := flags.String("cert", "", "X.509 certificate (DER or PEM) to enroll as PK, KEK and db entry")
	out := flags.String("out", "", "variable store to write")
	list := flags.String("list", "", "list the variables of this store instead")
	if err := flags.Parse(args); err != nil {
		return err
	}
	switch {
	case flags.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	case *list != "" && (*certPath != "" || *out != ""):
		return errors.New("-list excludes -cert and -out")
	case *list != "":
		return listStore(stdout, *list)
	case *certPath == "" || *out == "":
		return errors.New("both -cert and -out are required (or -list)")
	}
	return enroll(*template, *certPath, *out)
}

// defaultTemplate is Debian's blank variable store for OVMF with a 4 MiB
// flash (package ovmf).
const defaultTemplate = "/usr/share/OVMF/OVMF_VARS_4M.fd"

// enroll writes the store with the certificate enrolled.
func enroll(templatePath, certPath, outPath string) error {
	template, err := os.ReadFile(templatePath)
	if err != nil {
		return fmt.Errorf("reading template: %w", err)
	}
	cert, err := readCertificate(certPath)
	if err != nil {
		return err
	}
	esl := secureboot.SignatureList(cert)
	vars, err := ovmfvars.EnrollSecureBoot(template, ovmfvars.SecureBootKeys{PK: esl, KEK: esl, DB: esl})
	if err != nil {
		return fmt.Errorf("%s: %w", templatePath, err)
	}
	if err := os.WriteFile(outPath, vars, 0o644); err != nil {
		return fmt.Errorf("writing variable store: %w", err)
	}
	return nil
}

// readCertificate reads a certificate in DER or PEM form.
func readCertificate(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading certificate: %w", err)
	}
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("certificate %s: PEM block %q, want CERTIFICATE", path, block.Type)
		}
		b = block.Bytes
	}
	cert, err := x509.ParseCertificate(b)
	if err != nil {
		return nil, fmt.Errorf("parsing certificate %s: %w", path, err)
	}
	return cert, nil
}

// listStore prints one line for each record of a store: state, vendor,
// name, attributes, timestamp and the size and SHA-256 of the data.
func listStore(w io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s, err := ovmfvars.Parse(b)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, v := range s.Variables() {
		state := "live"
		if !v.Live() {
			state = fmt.Sprintf("%#02x", v.State)
		}
		ts := "-"
		if !v.Timestamp.IsZero() {
			ts = v.Timestamp.Format("2006-01-02T15:04:05Z")
		}
		fmt.Fprintf(w, "%-5s %v %-20s attr=%#02x time=%s size=%d sha256=%.16x\n",
			state, v.Vendor, v.Name, v.Attributes, ts, len(v.Data), sha256.Sum256(v.Data))
	}
	fmt.Fprintf(w, "%d bytes free\n", s.Free())
	return nil
}
