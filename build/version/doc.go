// Package version computes the version of a Metropolis build from git and
// renders what the build stamps with it: linker flags for the Go binaries and
// the product information files of the node image.
//
// A version reads v0.1.0-dev494.g0d8a8a4f.dirty: the release it counts from
// (the highest tag vX.Y.Z in the history of HEAD, or v0.1.0 before the first
// release), the number of commits since that tag (since the beginning of
// history when there is none), the first eight hex digits of the commit, and
// .dirty when tracked files have uncommitted changes. A clean checkout of a
// release tag is just that release, v0.1.0.
//
// Everything derives from the commit and the work tree, never from the clock
// or the machine, so that building the same commit twice gives the same
// bytes.
package version
