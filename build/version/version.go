package version

import (
	"fmt"

	nodeversion "metropolis.dev/metropolis/version"
)

// StampVariable is the Go variable that LDFlags sets.
const StampVariable = "metropolis.dev/metropolis/version.Version"

// hashDigits is how many hex digits of the commit hash a version shows.
const hashDigits = 8

// Version identifies a build by the state of its git work tree.
type Version struct {
	// Release is the release the version counts from.
	Release nodeversion.Release
	// CommitsSinceRelease counts the commits in the history of the
	// built commit that are not in the history of the release's tag (all
	// of them when there is no tag yet).
	CommitsSinceRelease int
	// Commit is the full hex hash of the built commit.
	Commit string
	// Dirty tells that tracked files had uncommitted changes.
	Dirty bool
}

// String renders the version as vX.Y.Z-devN.gHASH, with .dirty appended for
// a dirty work tree, or as vX.Y.Z alone for a clean release tag.
func (v Version) String() string {
	release := fmt.Sprintf("v%d.%d.%d", v.Release.Major, v.Release.Minor, v.Release.Patch)
	if v.CommitsSinceRelease == 0 && !v.Dirty {
		return release
	}
	s := fmt.Sprintf("%s-dev%d.g%s", release, v.CommitsSinceRelease, v.Commit[:min(hashDigits, len(v.Commit))])
	if v.Dirty {
		s += ".dirty"
	}
	return s
}

// LDFlags returns the linker flags that stamp the version into a Go binary,
// for go build -ldflags. Versions contain no spaces or quotes, so the result
// can be joined with other flags by a space.
func (v Version) LDFlags() string {
	return "-X " + StampVariable + "=" + v.String()
}
