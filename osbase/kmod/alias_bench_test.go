package kmod

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchAliasIndex builds an index shaped like the modules.alias of a full
// distribution kernel: about 26,000 aliases, most of them PCI and USB IDs,
// some matching device classes with leading wildcards.
func benchAliasIndex(b *testing.B) (*aliasIndex, []*Pattern) {
	b.Helper()
	x := newAliasIndex()
	var all []*Pattern
	add := func(pat, mod string) {
		if err := x.add(pat, mod); err != nil {
			b.Fatal(err)
		}
		p, _ := CompilePattern(pat)
		all = append(all, p)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 18000 {
		add(fmt.Sprintf("pci:v%08Xd%08Xsv*sd*bc*sc*i*", r.IntN(400)+0x1000, r.IntN(0x10000)), fmt.Sprintf("pcimod%d", i%900))
	}
	for i := range 7000 {
		add(fmt.Sprintf("usb:v%04Xp%04Xd*dc*dsc*dp*ic*isc*ip*in*", r.IntN(0x10000), r.IntN(0x10000)), fmt.Sprintf("usbmod%d", i%600))
	}
	for i := range 200 {
		add(fmt.Sprintf("pci:v*d*sv*sd*bc%02Xsc%02Xi%02X*", i%20, i/20, i%3), fmt.Sprintf("classmod%d", i))
		add(fmt.Sprintf("acpi*:PNP%04X:*", i), fmt.Sprintf("acpimod%d", i))
	}
	add("pci:v00001AF4d*sv*sd*bc*sc*i*", "virtio_pci")
	return x, all
}

var benchModaliases = []string{
	"pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
	"usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00",
	"acpi:PNP0A03:",
	"virtio:d00000002v00001AF4",
}

func BenchmarkLookup(b *testing.B) {
	x, all := benchAliasIndex(b)
	b.Run("indexed", func(b *testing.B) {
		for b.Loop() {
			for _, s := range benchModaliases {
				x.lookup(s)
			}
		}
	})
	// For comparison: what matching every pattern would cost.
	b.Run("linear", func(b *testing.B) {
		for b.Loop() {
			for _, s := range benchModaliases {
				for _, p := range all {
					p.Match(s)
				}
			}
		}
	})
}
