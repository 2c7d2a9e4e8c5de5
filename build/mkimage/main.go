package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"metropolis.dev/build/secureboot"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkimage: ")
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	err := run(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		log.Fatal(err)
	}
}

// run is the whole command; progress and the summary go to stdout.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	out := flags.String("out", "out/node.img", "disk image to write")
	slotB := flags.Bool("slot-b", false, "also fill slot B (system partition and boot-b.efi)")
	keyPath := flags.String("key", "", "PEM private key to sign the UKIs with (default: the development key)")
	certPath := flags.String("cert", "", "PEM certificate of -key")
	summaryPath := flags.String("summary", "", "also write the summary as JSON to this file")
	paramsPath := flags.String("parameters", "", "put this file, serialized NodeParameters, on the ESP as metropolis/parameters.pb, for the node to act on at its first boot (the node checks them)")
	extraCmdline := flags.String("cmdline", "", "append these parameters to each slot's kernel command line (such as metropolis.dns_check=NAME); they are signed with the UKI")
	partsDir := flags.String("parts", "", "also write the kernel (vmlinuz), initramfs (initramfs.cpio.zst) and each slot's command line (cmdline-A.txt...) into this directory, for booting without firmware")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	if (*keyPath == "") != (*certPath == "") {
		return errors.New("-key and -cert go together")
	}
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	var key *secureboot.Key
	keyDesc := ""
	if *keyPath != "" {
		key, err = secureboot.LoadKey(*keyPath, *certPath)
		if err != nil {
			return fmt.Errorf("loading signing key: %w", err)
		}
		keyDesc = *certPath
	} else {
		dir, err := secureboot.DefaultDevKeyDir()
		if err != nil {
			return err
		}
		key, err = secureboot.EnsureDevKey(dir, stdout)
		if err != nil {
			return fmt.Errorf("development signing key: %w", err)
		}
		keyDesc = "development key in " + dir
	}

	var params []byte
	if *paramsPath != "" {
		params, err = os.ReadFile(*paramsPath)
		if err != nil {
			return fmt.Errorf("reading node parameters: %w", err)
		}
	}

	start := time.Now()
	b := &builder{repo: repo, out: *out, slotB: *slotB, key: key, log: stdout, parts: *partsDir, params: params, extraCmdline: *extraCmdline}
	s, err := b.build(ctx)
	if err != nil {
		return err
	}
	s.SigningKey = keyDesc
	s.SigningSubject = key.Certificate.Subject.String()
	s.BuildSeconds = time.Since(start).Seconds()
	s.print(stdout)
	if *summaryPath != "" {
		j, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*summaryPath, append(j, '\n'), 0o644); err != nil {
			return fmt.Errorf("writing summary: %w", err)
		}
	}
	return nil
}

// repoRoot finds the repository's root, the directory with go.mod, from the
// working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the repository: no go.mod in any parent directory")
		}
		dir = parent
	}
}

// Summary describes a built image.
type Summary struct {
	Image   string `json:"image"`
	Version string `json:"version"`
	// ImageBytes is the disk's size; AllocatedBytes what the sparse file
	// takes on disk.
	ImageBytes     int64 `json:"image_bytes"`
	AllocatedBytes int64 `json:"allocated_bytes"`
	// RootHash is the dm-verity root hash of the system image, the same
	// for both slots.
	RootHash string `json:"root_hash"`
	// SystemBytes is the EROFS image, VerityBytes its hash tree.
	SystemBytes    int64             `json:"system_bytes"`
	VerityBytes    int64             `json:"verity_bytes"`
	InitramfsBytes int64             `json:"initramfs_bytes"`
	KernelBytes    int64             `json:"kernel_bytes"`
	UKIBytes       int64             `json:"uki_bytes"`
	Slots          []string          `json:"slots"`
	Partitions     []PartitionRange  `json:"partitions"`
	Cmdlines       map[string]string `json:"cmdlines"`
	SigningKey     string            `json:"signing_key"`
	SigningSubject string            `json:"signing_subject"`
	BuildSeconds   float64           `json:"build_seconds"`
}

// PartitionRange is where a partition is in the image, in bytes.
type PartitionRange struct {
	Name   string `json:"name"`
	Offset int64  `json:"offset"`
	Size   int64  `json:"size"`
}

func (s *Summary) print(w io.Writer) {
	fmt.Fprintf(w, "\nnode image %s (version %s)\n", s.Image, s.Version)
	fmt.Fprintf(w, "  disk:       %d MiB (%d MiB allocated)\n", s.ImageBytes>>20, s.AllocatedBytes>>20)
	for _, p := range s.Partitions {
		fmt.Fprintf(w, "  partition:  %-22s at %4d MiB, %4d MiB\n", p.Name, p.Offset>>20, p.Size>>20)
	}
	fmt.Fprintf(w, "  slots:      %v\n", s.Slots)
	fmt.Fprintf(w, "  UKI:        %.1f MiB each (kernel %.1f MiB, initramfs %.1f MiB)\n", mib(s.UKIBytes), mib(s.KernelBytes), mib(s.InitramfsBytes))
	fmt.Fprintf(w, "  system:     %.1f MiB EROFS + %.2f MiB hash tree\n", mib(s.SystemBytes), mib(s.VerityBytes))
	fmt.Fprintf(w, "  root hash:  %s\n", s.RootHash)
	fmt.Fprintf(w, "  signed by:  %s (%s)\n", s.SigningKey, s.SigningSubject)
	fmt.Fprintf(w, "  built in:   %.1f s\n", s.BuildSeconds)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
