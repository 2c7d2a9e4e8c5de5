// Command printversion prints the version stamped into it, for
// TestLDFlags.
package main

import (
	"fmt"

	"metropolis.dev/metropolis/version"
)

func main() {
	fmt.Println(version.Version)
}
