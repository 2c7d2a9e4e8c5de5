package securebootest

import (
	"fmt"
	"io"
	"os"

	"metropolis.dev/osbase/fat32"
	"metropolis.dev/osbase/gpt"
	"metropolis.dev/osbase/structfs"
)

// bootPath is where UEFI firmware looks for a boot loader on a disk it has
// no boot entry for (UEFI specification, section 3.5.1.1).
const bootPath = "/EFI/BOOT/BOOTX64.EFI"

// writeESPDisk writes a disk image to path with a GPT whose only partition
// is an EFI system partition holding image as the default boot loader.
func writeESPDisk(path string, image []byte) error {
	var tree structfs.Tree
	if err := tree.Place(bootPath, structfs.File(0o644, structfs.Bytes(image))); err != nil {
		return err
	}
	opts := fat32.Options{Label: "ESP", VolumeID: 0x5ecb007}
	size, err := fat32.SizeFS(&tree, opts)
	if err != nil {
		return fmt.Errorf("sizing the ESP: %w", err)
	}
	// Room for the ESP, aligned to 1 MiB, and the partition tables before
	// and after it.
	const mib = 1 << 20
	table := gpt.Table{
		DiskGUID: gpt.DerivedGUID("securebootest", "disk"),
		DiskSize: (size+mib-1)/mib*mib + 2*mib,
	}
	esp := &gpt.Partition{Type: gpt.TypeEFISystem, ID: gpt.DerivedGUID("securebootest", "ESP"), Name: gpt.NameESP}
	if err := table.AddPartition(esp, size, 0); err != nil {
		return fmt.Errorf("adding the ESP: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(table.DiskSize); err != nil {
		return err
	}
	if err := table.Write(f); err != nil {
		return fmt.Errorf("writing the partition table: %w", err)
	}
	opts.BlockCount = int64(esp.LastLBA - esp.FirstLBA + 1)
	if err := fat32.WriteFS(io.NewOffsetWriter(f, int64(esp.FirstLBA)*512), &tree, opts); err != nil {
		return fmt.Errorf("writing the ESP: %w", err)
	}
	return f.Close()
}
