// Package kernel takes the kernel and the kernel modules a node needs out
// of Debian's kernel image package.
//
// Debian's kernel package holds about four thousand modules (400 MB),
// drivers for hardware a node never sees among them, and no module index:
// Debian runs depmod when the package is installed. A node image wants the
// few modules it needs, and their index, built on the build machine and
// checked before anything boots. So OpenPackage reads the metadata every
// module carries in its .modinfo ELF section (name, depends=, softdep=,
// alias=, vermagic=), Select closes a list of module names under
// dependencies, and Install copies the kernel image and the selected
// modules into a tree and writes modules.dep, modules.alias,
// modules.softdep and modules.builtin for it in kmod's text formats. All
// of it is pure Go: no depmod, and nothing from the build machine's own
// kernel, is involved.
//
// The node loads those modules with metropolis.dev/osbase/kmod, which has
// no modprobe to call. Install therefore reads the index back with that
// package, so that an index the node could not use fails the build.
package kernel
