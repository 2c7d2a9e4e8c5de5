package gpt

// Partition type GUIDs of the partitions a node disk holds.
var (
	// TypeEFISystem is the EFI System Partition (ESP), FAT-formatted, from
	// which the firmware loads the boot loader.
	TypeEFISystem = mustParseGUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	// TypeMetropolisSystemA and TypeMetropolisSystemB are the two slots of
	// the A/B system image (a verity-protected root filesystem).
	TypeMetropolisSystemA = mustParseGUID("ee96054b-f6d0-4267-aaaa-724b2afea74c")
	TypeMetropolisSystemB = mustParseGUID("ee96054b-f6d0-4267-bbbb-724b2afea74c")
	// TypeMetropolisData is the node's data partition.
	TypeMetropolisData = mustParseGUID("9eeec464-6885-414a-b278-4305c51f7966")
)

// Partition names of a node disk, by which the node finds its partitions
// (PARTLABEL=).
const (
	NameESP               = "ESP"
	NameMetropolisSystemA = "METROPOLIS-SYSTEM-A"
	NameMetropolisSystemB = "METROPOLIS-SYSTEM-B"
	NameMetropolisData    = "METROPOLIS-NODE-DATA"
)
