// Package elfdeps finds the files a dynamically linked ELF program needs to
// run: its program interpreter (the dynamic loader) and the closure of the
// shared libraries named by DT_NEEDED entries, looked up the way Debian's
// glibc loader looks them up on a system without /etc/ld.so.cache.
//
// Everything is looked up inside a root directory, for example Debian
// packages unpacked together by debian.UnpackPinned, never on the build
// machine: symbolic links are followed by this package, not by the host
// kernel, with absolute targets taken relative to the root, and a link that
// would lead out of the root is an error.
//
// The result lists regular files and the symbolic links on the way to them
// (for example the SONAME link libc.so.6, or /lib64/ld-linux-x86-64.so.2
// pointing into /lib/x86_64-linux-gnu), so that copying them to the same
// paths in an image gives the loader exactly what it looks for.
package elfdeps

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// SearchDirs are the directories the loader searches for a library named
// by DT_NEEDED, in order, relative to the root. They are the default
// directories of Debian's amd64 glibc (ld.so --help lists them); the
// loader searches them when neither an environment variable nor
// /etc/ld.so.cache says otherwise, as on the node.
var SearchDirs = []string{
	"lib/x86_64-linux-gnu",
	"usr/lib/x86_64-linux-gnu",
	"lib",
	"usr/lib",
}

// maxLinks is how many symbolic links one lookup follows before it gives
// up, as the kernel's limit of 40.
const maxLinks = 40

// A File is one file of a closure.
type File struct {
	// Path is where the file is, relative to the root, slash-separated
	// and clean, for example lib/x86_64-linux-gnu/libc.so.6. Copied to
	// the image it goes to the same path.
	Path string
	// Target is the target of a symbolic link, verbatim. It is empty for
	// a regular file.
	Target string
}

// Closure is what a program needs from the root to run.
type Closure struct {
	// Interp is the program interpreter as the program names it, relative
	// to the root (lib64/ld-linux-x86-64.so.2), or empty for a static
	// program.
	Interp string
	// Libs maps each library name from a DT_NEEDED entry, of the program
	// or of a library, to the path where the loader finds it, relative to
	// the root and before following symbolic links. A name that is the
	// interpreter's DT_SONAME maps to Interp, as the loader uses the
	// interpreter it is running as.
	Libs map[string]string
	// Files are the files to copy, sorted by path, without the program
	// itself: every regular file of the interpreter and the libraries and
	// every symbolic link on the way to them.
	Files []File
}

// Resolve returns the closure of the program at prog, a path relative to
// root (sbin/mkfs.xfs). It fails, naming the library and who needs it, if
// a library is in none of SearchDirs, and it fails on malformed ELF files,
// on programs for another machine than the interpreter's, and on programs
// or libraries with DT_RPATH or DT_RUNPATH, which it does not implement.
func Resolve(root, prog string) (*Closure, error) {
	r := &resolver{root: root, files: map[string]File{}}
	c, err := r.resolve(prog)
	if err != nil {
		return nil, fmt.Errorf("elfdeps: %s: %w", prog, err)
	}
	return c, nil
}

type resolver struct {
	root  string
	files map[string]File
}

// object is what Resolve needs from one ELF file.
type object struct {
	class   elf.Class
	machine elf.Machine
	interp  string
	needed  []string
	soname  string
}

func (r *resolver) resolve(prog string) (*Closure, error) {
	rel, err := relPath(prog)
	if err != nil {
		return nil, err
	}
	progReal, err := r.lookup(rel, false)
	if err != nil {
		return nil, err
	}
	p, err := r.readObject(progReal)
	if err != nil {
		return nil, err
	}
	c := &Closure{Libs: map[string]string{}}
	if p.interp == "" {
		if len(p.needed) > 0 {
			return nil, fmt.Errorf("needs shared libraries but names no program interpreter")
		}
		return c, nil
	}
	if !path.IsAbs(p.interp) {
		return nil, fmt.Errorf("program interpreter %q is not an absolute path", p.interp)
	}
	c.Interp, err = relPath(p.interp)
	if err != nil {
		return nil, fmt.Errorf("program interpreter: %w", err)
	}
	interpReal, err := r.lookup(c.Interp, true)
	if err != nil {
		return nil, fmt.Errorf("program interpreter: %w", err)
	}
	interp, err := r.readObject(interpReal)
	if err != nil {
		return nil, fmt.Errorf("program interpreter: %w", err)
	}
	if interp.class != p.class || interp.machine != p.machine {
		return nil, fmt.Errorf("program interpreter %s is %v %v, the program %v %v", p.interp, interp.class, interp.machine, p.class, p.machine)
	}
	if interp.soname != "" {
		c.Libs[interp.soname] = c.Interp
	}

	// Breadth first, like the loader; each name is looked up once.
	type need struct{ name, by string }
	var queue []need
	for _, n := range p.needed {
		queue = append(queue, need{n, rel})
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if _, ok := c.Libs[n.name]; ok {
			continue
		}
		found, obj, err := r.findLibrary(n.name, p.class, p.machine)
		if err != nil {
			return nil, fmt.Errorf("library %s, needed by %s: %w", n.name, n.by, err)
		}
		c.Libs[n.name] = found
		for _, m := range obj.needed {
			queue = append(queue, need{m, found})
		}
	}
	for _, f := range r.files {
		c.Files = append(c.Files, f)
	}
	slices.SortFunc(c.Files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return c, nil
}

// errNotFound is returned when a library is in none of the search
// directories.
var errNotFound = errors.New("not found in " + strings.Join(SearchDirs, ", "))

// findLibrary looks for a library in the search directories and returns
// where it found it and the library. Files for another class or machine
// are skipped, as the loader does.
func (r *resolver) findLibrary(name string, class elf.Class, machine elf.Machine) (string, *object, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", nil, fmt.Errorf("unsupported library name %q", name)
	}
	for _, dir := range SearchDirs {
		candidate := path.Join(dir, name)
		real, err := r.lookup(candidate, false)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		obj, err := r.readObject(real)
		if err != nil {
			return "", nil, err
		}
		if obj.class != class || obj.machine != machine {
			continue
		}
		// Only now, as the loader would use this file.
		if _, err := r.lookup(candidate, true); err != nil {
			return "", nil, err
		}
		return candidate, obj, nil
	}
	return "", nil, errNotFound
}

// lookup follows rel, a clean relative path, inside the root to a regular
// file and returns the file's path, which contains no symbolic links. With
// record, the file and the links on the way are added to the closure.
func (r *resolver) lookup(rel string, record bool) (string, error) {
	var links []File
	done := []string{} // the components resolved so far, none a link
	todo := strings.Split(rel, "/")
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(done) == 0 {
				return "", fmt.Errorf("%s leads out of the root", rel)
			}
			done = done[:len(done)-1]
			continue
		}
		cur := path.Join(append(slices.Clone(done), c)...)
		fi, err := os.Lstat(filepath.Join(r.root, filepath.FromSlash(cur)))
		if err != nil {
			return "", fmt.Errorf("looking up %s: %w", rel, trimPathError(err))
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if len(links) == maxLinks {
				return "", fmt.Errorf("looking up %s: too many levels of symbolic links", rel)
			}
			target, err := os.Readlink(filepath.Join(r.root, filepath.FromSlash(cur)))
			if err != nil {
				return "", err
			}
			links = append(links, File{Path: cur, Target: target})
			if strings.HasPrefix(target, "/") {
				done = done[:0]
			}
			todo = append(strings.Split(target, "/"), todo...)
		case fi.IsDir():
			if len(todo) == 0 {
				return "", fmt.Errorf("%s is a directory", rel)
			}
			done = append(done, c)
		case fi.Mode().IsRegular():
			if len(todo) > 0 {
				return "", fmt.Errorf("looking up %s: %s is not a directory", rel, cur)
			}
			done = append(done, c)
			todo = nil
		default:
			return "", fmt.Errorf("looking up %s: %s is a %v, not a regular file", rel, cur, fi.Mode().Type())
		}
	}
	if len(done) == 0 {
		return "", fmt.Errorf("%s is the root directory", rel)
	}
	real := path.Join(done...)
	if record {
		for _, l := range links {
			r.files[l.Path] = l
		}
		r.files[real] = File{Path: real}
	}
	return real, nil
}

// trimPathError drops the host path from an error of os, which would name
// the cache directory rather than the file in the root.
func trimPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return fs.ErrNotExist
		}
		return pe.Err
	}
	return err
}

// readObject reads what Resolve needs from the ELF file at rel, a path in
// the root without symbolic links.
func (r *resolver) readObject(rel string) (obj *object, err error) {
	f, err := os.Open(filepath.Join(r.root, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// debug/elf is not hardened against every malformed input; a panic
	// there is an error here.
	defer func() {
		if p := recover(); p != nil {
			obj, err = nil, fmt.Errorf("%s: malformed ELF file: %v", rel, p)
		}
	}()
	ef, err := elf.NewFile(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	obj = &object{class: ef.Class, machine: ef.Machine}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return nil, fmt.Errorf("%s: ELF type %v, not an executable or shared object", rel, ef.Type)
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if p.Filesz > 4096 {
			return nil, fmt.Errorf("%s: program interpreter name of %d bytes", rel, p.Filesz)
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("%s: reading the program interpreter: %w", rel, err)
		}
		obj.interp = strings.TrimRight(string(b), "\x00")
	}
	if hasDynamic(ef) && ef.SectionByType(elf.SHT_DYNAMIC) == nil {
		// debug/elf finds the dynamic entries through the section headers.
		return nil, fmt.Errorf("%s: has a PT_DYNAMIC segment but no dynamic section", rel)
	}
	obj.needed, err = ef.DynString(elf.DT_NEEDED)
	if err != nil {
		return nil, fmt.Errorf("%s: reading DT_NEEDED: %w", rel, err)
	}
	for _, tag := range []elf.DynTag{elf.DT_RPATH, elf.DT_RUNPATH} {
		v, err := ef.DynString(tag)
		if err != nil {
			return nil, fmt.Errorf("%s: reading %v: %w", rel, tag, err)
		}
		if len(v) > 0 {
			return nil, fmt.Errorf("%s: has %v %q, which elfdeps does not implement", rel, tag, v)
		}
	}
	sonames, err := ef.DynString(elf.DT_SONAME)
	if err != nil {
		return nil, fmt.Errorf("%s: reading DT_SONAME: %w", rel, err)
	}
	if len(sonames) > 0 {
		obj.soname = sonames[0]
	}
	return obj, nil
}

// hasDynamic reports whether the file has a PT_DYNAMIC segment.
func hasDynamic(ef *elf.File) bool {
	for _, p := range ef.Progs {
		if p.Type == elf.PT_DYNAMIC {
			return true
		}
	}
	return false
}

// relPath turns an absolute or relative slash path into a clean path
// relative to the root, refusing one that leads out of it.
func relPath(p string) (string, error) {
	c := path.Clean("/" + p)
	if c == "/" {
		return "", fmt.Errorf("path %q names the root directory", p)
	}
	if c := path.Clean(p); !path.IsAbs(p) && (c == ".." || strings.HasPrefix(c, "../")) {
		return "", fmt.Errorf("path %q leads out of the root", p)
	}
	return c[1:], nil
}
