// Package bootparam parses the Linux kernel command line, as an init process
// reads it from /proc/cmdline, into its parameters.
//
// An init that takes security decisions from the command line (the node's
// stage-1 init takes the dm-verity root hash from it) must read it exactly as
// the kernel did, or an attacker who can influence part of it might make the
// kernel and the init see different values. Parse therefore follows the
// kernel's own splitting (lib/cmdline.c, next_arg): parameters are separated
// by white space outside double quotes, a parameter is a key, optionally
// followed by '=' and a value, and the quotes around a value or around the
// whole parameter are removed. "--" ends the kernel's parameters; what follows
// belongs to init and is returned separately.
//
// Where the kernel is lenient, Parse is strict: an unbalanced quote or a
// quote anywhere else than where the kernel strips it is an error rather than
// a guess. Lookup refuses a key given more than once, since the kernel and
// the modules that read a repeated parameter do not agree on which occurrence
// wins.
package bootparam
