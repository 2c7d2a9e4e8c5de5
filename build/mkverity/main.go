// Command mkverity protects a data image, such as a node's root filesystem,
// with dm-verity: it writes the image followed by its hash tree, the layout
// of the node's system partition, and prints the mapping table that maps it.
//
// The table names both devices PARTLABEL=METROPOLIS-SYSTEM-X by default, X
// standing for the A/B slot for whoever installs the image to fill in;
// -device names another device. There is no superblock: the table carries
// every parameter (see package metropolis.dev/osbase/verity).
//
// The salt is random unless given with -salt or derived from the image with
// -derive-salt; reproducible builds need one of those, since the salt
// determines the tree and the root hash. Before it succeeds, mkverity checks
// the whole output against the table it prints.
//
// Usage: go run ./build/mkverity -data IN -out OUT [-salt HEX | -derive-salt] [-device DEV]
package main

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"metropolis.dev/osbase/verity"
)

// defaultDevice names the node's system partition of either slot.
const defaultDevice = "PARTLABEL=METROPOLIS-SYSTEM-X"

// copyBufferSize makes the copy of the image use large reads and writes.
const copyBufferSize = 1 << 20

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkverity: ")
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		// Usage was asked for and has been printed.
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run is the whole command, writing the table to stdout and usage messages
// to stderr.
func run(args []string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("mkverity", flag.ContinueOnError)
	flags.SetOutput(stderr)
	dataPath := flags.String("data", "", "data image to protect, a whole number of 4096-byte blocks (required)")
	outPath := flags.String("out", "", "file to write the data image and its hash tree to (required)")
	saltHex := flags.String("salt", "", "salt in hex, at most 256 bytes (default: 64 random bytes)")
	deriveSalt := flags.Bool("derive-salt", false, "derive the salt from the data image, for reproducible builds")
	device := flags.String("device", defaultDevice, "device holding the output, as the table names it")
	if err := flags.Parse(args); err != nil {
		return err
	}
	switch {
	case flags.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	case *dataPath == "" || *outPath == "":
		return errors.New("both -data and -out are required")
	case *saltHex != "" && *deriveSalt:
		return errors.New("-salt and -derive-salt exclude each other")
	}

	in, err := os.Open(*dataPath)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := checkSize(in); err != nil {
		return err
	}

	var salt []byte
	switch {
	case *saltHex != "":
		if salt, err = hex.DecodeString(*saltHex); err != nil {
			return fmt.Errorf("-salt: %w", err)
		}
	case *deriveSalt:
		if salt, err = verity.DeriveSalt(in); err != nil {
			return err
		}
		if _, err := in.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("rewinding %s: %w", *dataPath, err)
		}
	}

	table, err := write(in, *outPath, *device, salt)
	if err != nil {
		// Leave no output that a build could mistake for a good one.
		os.Remove(*outPath)
		return err
	}
	_, err = fmt.Fprintln(stdout, table)
	return err
}

// checkSize rejects data images the encoder would only reject after the
// whole image has been copied.
func checkSize(in *os.File) error {
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 || st.Size()%verity.BlockSize != 0 {
		return fmt.Errorf("data image %s has %d bytes, not a positive multiple of %d: pad it with zeros",
			in.Name(), st.Size(), verity.BlockSize)
	}
	return nil
}

// write copies the data image to outPath, appends its hash tree, checks the
// result and returns the table that maps it from device.
func write(in io.Reader, outPath, device string, salt []byte) (*verity.MappingTable, error) {
	out, err := os.OpenFile(outPath, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close()

	enc, err := verity.NewEncoder(out, verity.Options{Salt: salt})
	if err != nil {
		return nil, err
	}
	// The data goes to the file and the encoder at once; closing the
	// encoder then appends the tree right after it.
	if _, err := io.CopyBuffer(io.MultiWriter(out, enc), in, make([]byte, copyBufferSize)); err != nil {
		return nil, fmt.Errorf("copying data image: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	table, err := enc.MappingTable(device, device, enc.DataSize())
	if err != nil {
		return nil, err
	}
	if err := verity.Verify(out, out, table); err != nil {
		return nil, fmt.Errorf("checking %s: %w", outPath, err)
	}
	if err := out.Close(); err != nil {
		return nil, fmt.Errorf("closing %s: %w", outPath, err)
	}
	return table, nil
}
