// Package debian fetches and unpacks Debian packages pinned by exact version
// and sha256.
//
// Metropolis takes the inputs Go modules cannot express (the Linux kernel,
// the UEFI stub, mkfs tools) from Debian 12 as binary packages instead of
// building them from source: Debian signs its kernels for Secure Boot, keeps
// them patched for years, and apt can fetch them on every build machine
// without a second build system. For a build to be reproducible and to trust
// what it puts into a node image, each package is pinned in a pin file under
// third_party/ (see ReadPins for the format), and nothing is used before its
// sha256 matches the pin.
//
// Fetch downloads a pinned package with apt-get into a cache outside the
// repository and reuses it on later builds; Unpack extracts a package's files
// in pure Go, so that no dpkg database, root privileges or host tools beyond
// apt are involved and the same code runs on every machine. The .deb bytes
// Unpack reads are parsed defensively: archive members that would land
// outside the target directory are refused.
package debian
