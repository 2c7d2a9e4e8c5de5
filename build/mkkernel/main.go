// Command mkkernel extracts the kernel and the kernel modules a node needs
// from the pinned Debian kernel package.
//
// It fetches the packages pinned in -pins and unpacks them (both cached, see
// metropolis.dev/build/debian's UnpackPinned), selects the modules listed in
// -modules together with everything they depend on, and installs the
// kernel image and those modules, with their module index, into -out (see
// metropolis.dev/build/kernel for the layout). The image writers take
// their kernel and modules from there.
//
// Usage, from the repository root:
//
//	go run ./build/mkkernel -out DIR
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"

	"metropolis.dev/build/debian"
	"metropolis.dev/build/kernel"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mkkernel: ")
	out := flag.String("out", "", "directory to install the kernel and modules into; must not exist or be empty")
	pins := flag.String("pins", kernel.PinFile, "pin file of the kernel package")
	modules := flag.String("modules", kernel.ModuleListFile, "list of the modules to install")
	flag.Parse()
	if *out == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()
	sel, release, err := build(ctx, *pins, *modules, *out)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("installed kernel %s and %d modules (%d bytes) into %s", release, len(sel.Modules), sel.Size(), *out)
	if len(sel.Builtin) > 0 {
		log.Printf("built into the kernel: %s", strings.Join(sel.Builtin, " "))
	}
	if len(sel.Unresolved) > 0 {
		log.Printf("soft dependencies naming nothing in the package: %s", strings.Join(sel.Unresolved, ", "))
	}
}

// build does the work of mkkernel and returns the installed selection and
// the kernel release.
func build(ctx context.Context, pinsPath, modulesPath, out string) (*kernel.Selection, string, error) {
	pins, err := debian.ReadPins(pinsPath)
	if err != nil {
		return nil, "", err
	}
	names, err := kernel.ReadModuleList(modulesPath)
	if err != nil {
		return nil, "", err
	}
	dir, err := debian.UnpackPinned(ctx, pins)
	if err != nil {
		return nil, "", err
	}
	pkg, err := kernel.OpenPackage(dir)
	if err != nil {
		return nil, "", err
	}
	sel, err := pkg.Select(names)
	if err != nil {
		return nil, "", fmt.Errorf("selecting modules from %s: %w", modulesPath, err)
	}
	if err := pkg.Install(out, sel); err != nil {
		return nil, "", err
	}
	return sel, pkg.Release, nil
}
