// Package version tells which build of Metropolis a binary or node image is.
//
// It lives apart from the build tooling (build/version computes the values
// from git) because node code must not import build/. The build stamps
// Version into every Go binary with the linker:
//
//	go build -ldflags "-X metropolis.dev/metropolis/version.Version=v0.1.0-dev5.g0d8a8a4f" ...
//
// and writes ProductInfo as JSON to /etc/product-info.json in the node image.
package version

// Version is the version of this binary, such as v0.1.0-dev5.g0d8a8a4f.dirty,
// or "unknown" when it was built without stamping (go test, go run).
var Version = "unknown"

// ProductInfo describes a node image. The build writes it as JSON to
// /etc/product-info.json; Version repeats what the other fields say, in the
// form people read.
type ProductInfo struct {
	// ID is the operating system's ID, as in /etc/os-release.
	ID string `json:"id"`
	// Name is the product's name, as in /etc/os-release.
	Name string `json:"name"`
	// Version is the full version, such as v0.1.0-dev5.g0d8a8a4f.dirty.
	Version string `json:"version"`
	// Release is the release the version counts from.
	Release Release `json:"release"`
	// CommitsSinceRelease counts the commits since that release.
	CommitsSinceRelease int `json:"commits_since_release"`
	// Commit is the full hash of the git commit built.
	Commit string `json:"commit"`
	// Dirty tells that the build had uncommitted changes to tracked files.
	Dirty bool `json:"dirty"`
}

// Release is a release version, vMajor.Minor.Patch.
type Release struct {
	Major int `json:"major"`
	Minor int `json:"minor"`
	Patch int `json:"patch"`
}
