// Package declarative describes a directory tree as Go structs and places
// them at a path, so that code reaches files through typed fields
// (root.Data.Node.Credentials.Certificate) rather than by joining strings.
//
// A directory is a struct that embeds Directory; its subdirectories and
// files are fields tagged with their names:
//
//	type Root struct {
//		declarative.Directory
//		Data DataDirectory    `dir:"data"`
//		Log  declarative.File `file:"log.txt"`
//	}
//
// A field tagged `dir` is a Directory or a struct embedding it, a field
// tagged `file` a File or a struct embedding it, so that a file can carry
// methods of its own (reading and writing a particular format, say). Place
// walks such a tree and gives every node its path; from then on each
// answers FullPath. Nothing is created on disk until asked for
// (MkdirAll, File.Write).
//
// The tree is checked when it is placed: a name must be a single path
// component, a directory must not have two children of the same name, and
// a field of a node's type must be tagged. Typos and forgotten tags fail at
// the start rather than as a file written to the wrong place.
package declarative

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
)

// Directory is a directory of a tree. Embed it in a struct to describe the
// directory's contents, or use it as it is for a directory whose contents
// are not described.
type Directory struct {
	path string
}

// FullPath returns the directory's path, once placed.
func (d *Directory) FullPath() string {
	return d.path
}

// MkdirAll creates the directory and its parents that are missing, with
// mode perm (before umask).
func (d *Directory) MkdirAll(perm os.FileMode) error {
	if d.path == "" {
		return errors.New("declarative: directory not placed")
	}
	return os.MkdirAll(d.path, perm)
}

// File is a file of a tree. Embed it in a struct to give the file methods
// of its own.
type File struct {
	path string
}

// FullPath returns the file's path, once placed.
func (f *File) FullPath() string {
	return f.path
}

// Read returns the file's contents.
func (f *File) Read() ([]byte, error) {
	if f.path == "" {
		return nil, errors.New("declarative: file not placed")
	}
	return os.ReadFile(f.path)
}

// Write replaces the file's contents atomically: it writes a temporary
// file next to it, syncs it, renames it over the file and syncs the
// directory, so that after a crash the file holds either the old or the
// new contents, never a mix or nothing.
func (f *File) Write(data []byte, perm os.FileMode) (err error) {
	if f.path == "" {
		return errors.New("declarative: file not placed")
	}
	dir, name := filepath.Split(f.path)
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Remove removes the file. A file that does not exist is not an error.
func (f *File) Remove() error {
	if f.path == "" {
		return errors.New("declarative: file not placed")
	}
	if err := os.Remove(f.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

var (
	directoryType = reflect.TypeFor[Directory]()
	fileType      = reflect.TypeFor[File]()
)

// Place gives every node of the tree root, a pointer to a struct that
// embeds Directory, its path: path for root itself, and its parent's path
// joined with its tag's name for every node below.
func Place(root any, path string) error {
	v := reflect.ValueOf(root)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("declarative: placing %T: not a pointer to a struct", root)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("declarative: placing at %q, which is not an absolute path", path)
	}
	return placeDirectory(v.Elem(), filepath.Clean(path))
}

// kind tells whether t is a directory, a file or neither: Directory or
// File, or a struct embedding one of them.
func kind(t reflect.Type) (isDir, isFile bool) {
	switch {
	case t == directoryType:
		return true, false
	case t == fileType:
		return false, true
	case t.Kind() != reflect.Struct:
		return false, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type == directoryType {
			return true, false
		}
		if f.Anonymous && f.Type == fileType {
			return false, true
		}
	}
	return false, false
}

// node returns the Directory or File of v, a directory or file struct.
func node(v reflect.Value) reflect.Value {
	if v.Type() == directoryType || v.Type() == fileType {
		return v
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Anonymous && (f.Type == directoryType || f.Type == fileType) {
			return v.Field(i)
		}
	}
	panic("declarative: node of a value that is neither a directory nor a file")
}

// setPath sets the path of the Directory or File of v.
func setPath(v reflect.Value, path string) {
	switch n := node(v).Addr().Interface().(type) {
	case *Directory:
		n.path = path
	case *File:
		n.path = path
	}
}

func placeDirectory(v reflect.Value, path string) error {
	if isDir, _ := kind(v.Type()); !isDir {
		return fmt.Errorf("declarative: %s: %v is not a directory (it does not embed declarative.Directory)", path, v.Type())
	}
	setPath(v, path)
	if v.Type() == directoryType {
		return nil
	}
	names := make(map[string]string)
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if f.Anonymous && f.Type == directoryType {
			continue
		}
		dirName, hasDir := f.Tag.Lookup("dir")
		fileName, hasFile := f.Tag.Lookup("file")
		isDir, isFile := kind(f.Type)
		where := fmt.Sprintf("%s: field %s", path, f.Name)
		switch {
		case hasDir && hasFile:
			return fmt.Errorf("declarative: %s has both a dir and a file tag", where)
		case !hasDir && !hasFile:
			if isDir || isFile {
				return fmt.Errorf("declarative: %s is a %v without a dir or file tag", where, f.Type)
			}
			continue
		case !f.IsExported():
			return fmt.Errorf("declarative: %s is tagged but not exported", where)
		case hasDir && !isDir:
			return fmt.Errorf("declarative: %s is tagged dir but its type %v does not embed declarative.Directory", where, f.Type)
		case hasFile && !isFile:
			return fmt.Errorf("declarative: %s is tagged file but its type %v does not embed declarative.File", where, f.Type)
		}
		name := dirName + fileName
		if err := checkName(name); err != nil {
			return fmt.Errorf("declarative: %s: %w", where, err)
		}
		if other, ok := names[name]; ok {
			return fmt.Errorf("declarative: %s: fields %s and %s are both named %q", path, other, f.Name, name)
		}
		names[name] = f.Name
		child := filepath.Join(path, name)
		if hasFile {
			setPath(v.Field(i), child)
			continue
		}
		if err := placeDirectory(v.Field(i), child); err != nil {
			return err
		}
	}
	return nil
}

// checkName tells why name cannot be a name in a directory, or nil.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not a name", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains a slash or NUL", name)
	}
	return nil
}

// MkdirAll creates the directory tree, a placed pointer to a directory
// struct as for Place, and every directory below it, with mode perm
// (before umask).
func MkdirAll(tree any, perm os.FileMode) error {
	v := reflect.ValueOf(tree)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("declarative: creating directories of %T: not a pointer", tree)
	}
	return mkdirAll(v.Elem(), perm)
}

func mkdirAll(v reflect.Value, perm os.FileMode) error {
	if isDir, _ := kind(v.Type()); !isDir {
		return fmt.Errorf("declarative: creating directories: %v is not a directory", v.Type())
	}
	d := node(v).Addr().Interface().(*Directory)
	if err := d.MkdirAll(perm); err != nil {
		return err
	}
	if v.Type() == directoryType {
		return nil
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if _, ok := f.Tag.Lookup("dir"); !ok {
			continue
		}
		if err := mkdirAll(v.Field(i), perm); err != nil {
			return err
		}
	}
	return nil
}
