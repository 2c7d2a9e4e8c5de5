package main

import (
	"metropolis.dev/osbase/bringup"
	"metropolis.dev/osbase/logtree"
)

// ephemeralDir is memory for state that lives as long as the boot
// (localstorage.Root.Ephemeral).
const ephemeralDir = "/ephemeral"

// consoleOptions keep the serial console readable: the supervisor's
// account of every state change stays in the log tree, and the console
// shows only its warnings.
var consoleOptions = bringup.ConsoleOptions{
	Quiet: []bringup.QuietSubtree{
		{DN: "supervisor", MinSeverity: logtree.WARNING},
	},
	Shorten: logtree.MetropolisShortenDict,
}

func main() {
	n := &node{}
	bringup.Main(bringup.Config{
		Root:    n.run,
		Tmpfs:   []string{ephemeralDir},
		Console: consoleOptions,
	})
}
