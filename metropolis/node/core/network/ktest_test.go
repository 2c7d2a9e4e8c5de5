package network

import (
	"testing"

	"metropolis.dev/osbase/test/ktest"
)

// TestKernel runs the tests needing kernel features that build machines may
// lack, bonds and VLANs, in a VM on the node's kernel. The firewall test
// runs there too, to prove the ruleset on the kernel the node runs.
func TestKernel(t *testing.T) {
	ktest.Run(t, ktest.Options{
		Run:     "^(TestStaticBondAndVLAN|TestFirewall)$",
		Modules: []string{"veth", "bonding", "8021q", "nf_tables", "nft_ct", "nft_chain_nat", "nft_masq"},
	})
}
