// Package kmod loads Linux kernel modules, with their dependencies, and
// finds the modules that drive a given device.
//
// A node has no modprobe and no shell: its init is a Go program, and the
// kernel's own request_module has no helper to call. Whatever modprobe
// would do at boot therefore happens here: a Manager loads a module by
// name after everything it needs (Load), and loads the drivers for a
// device from the modalias string the kernel reports for it
// (LoadForModalias), so that the node can bring up the hardware it finds.
//
// The Manager reads the text files of a module directory as kmod's depmod
// writes them (modules.dep, modules.alias, modules.softdep,
// modules.builtin; see ReadIndex), not depmod's binary .bin indexes. The
// node image builder writes the text files for the modules it ships, and
// they are small enough to parse at boot. Every name in them is resolved
// once, when the index is read, so loading never parses anything again.
//
// Alias patterns are shell wildcards (fnmatch(3) syntax) such as
// pci:v00001AF4d*sv*sd*bc*sc*i*. They are compiled once into tokens and
// indexed by their literal prefix, so that matching a device tries only the
// few patterns that can match it (see aliasIndex).
//
// Modules are loaded with finit_module(2), so the kernel reads the module
// file itself and can verify its signature. The system call hides behind
// the Loader interface: the unit tests check everything up to it with a
// fake loader, because the machine running them has a different kernel.
// SyscallLoader itself can only be tested by booting the node's kernel in
// a VM.
package kmod
