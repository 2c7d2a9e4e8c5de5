package structfstest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"metropolis.dev/osbase/structfs"
)

// DiffOptions tell Diff what to expect beyond the tree itself.
type DiffOptions struct {
	// ModTime is the modification time every node must have, in seconds
	// since the Unix epoch.
	ModTime uint32
	// IgnoreModTime skips that check, for extractors that do not restore
	// all times (GNU cpio leaves symlinks and some directories at the time
	// of extraction).
	IgnoreModTime bool
	// IgnoreSetID skips the setuid and setgid bits, for extractors that
	// change the owner after the mode, which clears them (fsck.erofs 1.5).
	IgnoreSetID bool
}

// Diff compares tree with the host directory dir, which must hold exactly
// the tree's nodes, with the same types, modes, owners, link counts,
// contents, symlink targets, device numbers and modification times. It
// returns every difference found, or nil.
func Diff(tree *structfs.Tree, dir string, opts DiffOptions) error {
	return DiffFunc(tree, dir, func(hostPath string, e structfs.Entry) error {
		return diffEntry(hostPath, e, opts)
	})
}

// DiffFunc is Diff with the comparison of each node left to compare, for
// file systems that keep less than Diff checks (FAT has no modes, owners or
// links). compare gets the host path of every node of the tree; dir must
// hold nothing else. It returns every difference found, or nil.
func DiffFunc(tree *structfs.Tree, dir string, compare func(hostPath string, e structfs.Entry) error) error {
	var errs []error
	inTree := make(map[string]bool)
	err := tree.Walk(func(e structfs.Entry) error {
		inTree[e.Path] = true
		if err := compare(filepath.Join(dir, e.Path), e); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.Path, err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if tp := filepath.Join("/", rel); !inTree[tp] {
			errs = append(errs, fmt.Errorf("%s: on the host but not in the tree", tp))
		}
		return nil
	})
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// diffEntry compares the host file at p with e.
func diffEntry(p string, e structfs.Entry, opts DiffOptions) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return fmt.Errorf("lstat: %w", err)
	}
	var errs []error
	mismatch := func(what string, got, want any) {
		errs = append(errs, fmt.Errorf("%s is %v, want %v", what, got, want))
	}
	gotMode, wantMode := st.Mode, e.UnixMode()
	if opts.IgnoreSetID {
		gotMode &^= unix.S_ISUID | unix.S_ISGID
		wantMode &^= unix.S_ISUID | unix.S_ISGID
	}
	if gotMode != wantMode {
		mismatch("mode", fmt.Sprintf("%#o", gotMode), fmt.Sprintf("%#o", wantMode))
	}
	if st.Uid != e.UID || st.Gid != e.GID {
		mismatch("owner", fmt.Sprintf("%d:%d", st.Uid, st.Gid), fmt.Sprintf("%d:%d", e.UID, e.GID))
	}
	if uint64(st.Nlink) != uint64(e.Links) {
		mismatch("link count", st.Nlink, e.Links)
	}
	if !opts.IgnoreModTime && (st.Mtim.Sec != int64(opts.ModTime) || st.Mtim.Nsec != 0) {
		mismatch("mtime", fmt.Sprintf("%d.%09d", st.Mtim.Sec, st.Mtim.Nsec), opts.ModTime)
	}
	if err := diffContent(p, &st, e); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// diffContent compares what a node holds besides its metadata.
func diffContent(p string, st *unix.Stat_t, e structfs.Entry) error {
	switch e.Type {
	case structfs.TypeFile:
		got, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var want bytes.Buffer
		if err := structfs.CopyBlob(&want, e.Blob); err != nil {
			return err
		}
		if !bytes.Equal(got, want.Bytes()) {
			return fmt.Errorf("content differs: %d bytes, want %d", len(got), want.Len())
		}
	case structfs.TypeSymlink:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if target != e.Target {
			return fmt.Errorf("symlink target is %q, want %q", target, e.Target)
		}
	case structfs.TypeCharDevice, structfs.TypeBlockDevice:
		major, minor := unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
		if major != e.Major || minor != e.Minor {
			return fmt.Errorf("device is %d:%d, want %d:%d", major, minor, e.Major, e.Minor)
		}
	}
	return nil
}
