// Command mkuki builds a node's unified kernel image (see package
// metropolis.dev/build/uki) and signs it for Secure Boot.
//
// The stub comes from the systemd-boot-efi package pinned in the repository,
// and the os-release section names the version computed from the
// repository's git state, unless -stub or -osrel name other files. With
// -verity-table, the file mkverity's table was saved to, the command line
// gets the parameters that make the dm-verity device the root filesystem.
//
// Without -key and -cert, mkuki signs with this machine's development key,
// creating it on first use, and says so (see package
// metropolis.dev/build/secureboot); -dev-key-dir overrides where it lives.
// The same inputs and key always give the same output.
//
// Usage:
//
//	go run ./build/mkuki -kernel VMLINUZ [-initramfs CPIO] -cmdline "..." [-verity-table TABLE]
//		-out UKI [-key KEY.pem -cert CERT.pem] [-repo DIR] [-stub STUB] [-osrel OSREL]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"metropolis.dev/build/secureboot"
	"metropolis.dev/build/uki"
	"metropolis.dev/build/version"
	"metropolis.dev/osbase/verity"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkuki: ")
	err := run(context.Background(), os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

type options struct {
	kernel, initramfs, cmdline, verityTable string
	out, key, cert, devKeyDir               string
	repo, stub, osrel                       string
}

// run is the whole command; it writes usage and the development key notice
// to stderr.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	var o options
	flags := flag.NewFlagSet("mkuki", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.StringVar(&o.kernel, "kernel", "", "x86-64 Linux kernel image, bzImage (required)")
	flags.StringVar(&o.initramfs, "initramfs", "", "initramfs (default: none)")
	flags.StringVar(&o.cmdline, "cmdline", "", "kernel command line")
	flags.StringVar(&o.verityTable, "verity-table", "", "file with the root filesystem's dm-verity table, as mkverity prints it")
	flags.StringVar(&o.out, "out", "", "file to write the signed UKI to (required)")
	flags.StringVar(&o.key, "key", "", "PEM RSA private key to sign with (default: the development key)")
	flags.StringVar(&o.cert, "cert", "", "PEM certificate of -key")
	flags.StringVar(&o.devKeyDir, "dev-key-dir", "", "directory of the development key (default: secureboot-dev in the build cache)")
	flags.StringVar(&o.repo, "repo", ".", "root of the Metropolis repository, for the stub's pin and the version")
	flags.StringVar(&o.stub, "stub", "", "systemd UEFI stub (default: from the pinned systemd-boot-efi package)")
	flags.StringVar(&o.osrel, "osrel", "", "os-release file (default: generated for the repository's version)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	switch {
	case flags.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	case o.kernel == "" || o.out == "":
		return errors.New("-kernel and -out are required")
	case (o.key == "") != (o.cert == ""):
		return errors.New("-key and -cert go together")
	case o.key != "" && o.devKeyDir != "":
		return errors.New("-dev-key-dir is for the development key; -key and -cert name another")
	}

	contents, err := readContents(ctx, o)
	if err != nil {
		return err
	}
	stub, err := readStub(ctx, o)
	if err != nil {
		return err
	}
	image, err := uki.Build(stub, contents)
	if err != nil {
		return err
	}
	key, err := signingKey(o, stderr)
	if err != nil {
		return err
	}
	signed, err := secureboot.Sign(image, key)
	if err != nil {
		return err
	}
	return writeAtomically(o.out, signed)
}

// signingKey loads the key given, or the development key.
func signingKey(o options, stderr io.Writer) (*secureboot.Key, error) {
	if o.key != "" {
		return secureboot.LoadKey(o.key, o.cert)
	}
	dir := o.devKeyDir
	if dir == "" {
		var err error
		if dir, err = secureboot.DefaultDevKeyDir(); err != nil {
			return nil, err
		}
	}
	return secureboot.EnsureDevKey(dir, stderr)
}

func readContents(ctx context.Context, o options) (uki.Contents, error) {
	var c uki.Contents
	var err error
	if c.Kernel, err = os.ReadFile(o.kernel); err != nil {
		return c, err
	}
	if o.initramfs != "" {
		if c.Initramfs, err = os.ReadFile(o.initramfs); err != nil {
			return c, err
		}
	}
	c.Cmdline = o.cmdline
	if o.verityTable != "" {
		b, err := os.ReadFile(o.verityTable)
		if err != nil {
			return c, err
		}
		table, err := verity.ParseMappingTable(strings.TrimSpace(string(b)))
		if err != nil {
			return c, fmt.Errorf("%s: %w", o.verityTable, err)
		}
		if c.Cmdline, err = uki.AppendVerityRoot(c.Cmdline, table); err != nil {
			return c, err
		}
	}
	if o.osrel != "" {
		c.OSRelease, err = os.ReadFile(o.osrel)
		return c, err
	}
	v, err := version.FromGit(ctx, o.repo)
	if err != nil {
		return c, fmt.Errorf("computing the version for os-release (or pass -osrel): %w", err)
	}
	c.OSRelease = v.OSRelease()
	return c, nil
}

func readStub(ctx context.Context, o options) ([]byte, error) {
	if o.stub != "" {
		return os.ReadFile(o.stub)
	}
	return uki.PinnedStub(ctx, o.repo)
}

// writeAtomically writes a file through a temporary file renamed into
// place, so that a failed or concurrent build never leaves a partial UKI
// where a good one is expected.
func writeAtomically(path string, content []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(content); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
