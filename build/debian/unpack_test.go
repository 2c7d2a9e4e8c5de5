package debian

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildWithDpkg builds a real package with dpkg-deb, compressed as named,
// from a tree that exercises every kind of file Unpack handles.
func buildWithDpkg(t *testing.T, compression string) string {
	t.Helper()
	src := t.TempDir()
	write := func(name, body string, perm os.FileMode) {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, perm); err != nil {
			t.Fatal(err)
		}
	}
	write("DEBIAN/control", "Package: unpacktest\nVersion: 1.0\nArchitecture: all\nMaintainer: Test <test@example.com>\nDescription: test package\n", 0o644)
	write("usr/bin/tool", "#!/bin/false\n", 0o755)
	write("usr/lib/test/odd", "odd length", 0o644)
	write("usr/lib/test/private", "secret", 0o600)
	long := "usr/share/" + strings.Repeat("long-directory-name/", 6) + "file-with-a-name-beyond-the-classic-tar-limit"
	write(long, "long", 0o644)
	for _, l := range []struct{ target, name string }{
		{"odd", "usr/lib/test/relative"},
		{"/usr/bin/tool", "usr/lib/test/absolute"},
	} {
		if err := os.Symlink(l.target, filepath.Join(src, l.name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(src, "usr/bin/tool"), filepath.Join(src, "usr/share/hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(src, "usr/share/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(t.TempDir(), "test.deb")
	out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+compression, "--build", src, deb).CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb
}

// TestUnpackMatchesDpkg unpacks real packages built by dpkg-deb with each
// compression Debian uses and compares the result with what dpkg-deb
// itself extracts.
func TestUnpackMatchesDpkg(t *testing.T) {
	for _, compression := range []string{"xz", "zstd", "gzip", "none"} {
		t.Run(compression, func(t *testing.T) {
			deb := buildWithDpkg(t, compression)
			want := t.TempDir()
			if out, err := exec.Command("dpkg-deb", "-x", deb, want).CombinedOutput(); err != nil {
				t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
			}
			got := filepath.Join(t.TempDir(), "out")
			if err := Unpack(deb, got); err != nil {
				t.Fatal(err)
			}
			compareTrees(t, want, got)
			a, errA := os.Lstat(filepath.Join(got, "usr/bin/tool"))
			b, errB := os.Lstat(filepath.Join(got, "usr/share/hard"))
			if errA != nil || errB != nil || !os.SameFile(a, b) {
				t.Errorf("usr/share/hard is not a hard link of usr/bin/tool (%v, %v)", errA, errB)
			}
		})
	}
}

// compareTrees checks that got holds the same files as want: same kinds,
// contents, link targets and file permissions.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := make(map[string]bool)
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: missing: %v", rel, err)
			return nil
		}
		if wi.Mode().Type() != gi.Mode().Type() {
			t.Errorf("%s: got type %v, want %v", rel, gi.Mode().Type(), wi.Mode().Type())
			return nil
		}
		switch {
		case wi.Mode().IsRegular():
			if wi.Mode().Perm() != gi.Mode().Perm() {
				t.Errorf("%s: got mode %v, want %v", rel, gi.Mode().Perm(), wi.Mode().Perm())
			}
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: got contents %q, want %q", rel, gb, wb)
			}
		case wi.Mode().Type() == fs.ModeSymlink:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(filepath.Join(got, rel))
			if wl != gl {
				t.Errorf("%s: got link target %q, want %q", rel, gl, wl)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(got, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			t.Errorf("%s: extracted, but dpkg-deb does not extract it", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnpackRefusesEscapes feeds packages that try to write outside the
// target directory and checks that each fails and that nothing appears
// next to the target.
func TestUnpackRefusesEscapes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries func(outside string) []entry
		wantErr string
	}{
		{
			name:    "dot dot",
			entries: func(string) []entry { return []entry{file("../evil", "x")} },
			wantErr: "with .. refused",
		},
		{
			name:    "dot dot inside",
			entries: func(string) []entry { return []entry{dir("./a/"), file("./a/../../evil", "x")} },
			wantErr: "with .. refused",
		},
		{
			name:    "absolute",
			entries: func(outside string) []entry { return []entry{file(outside+"/evil", "x")} },
			wantErr: "absolute member name",
		},
		{
			name: "through absolute symlink",
			entries: func(outside string) []entry {
				return []entry{symlink("./link", outside), file("./link/evil", "x")}
			},
			wantErr: "escapes",
		},
		{
			name: "through relative symlink",
			entries: func(string) []entry {
				return []entry{dir("./a/"), symlink("./a/up", "../../outside"), file("./a/up/evil", "x")}
			},
			wantErr: "escapes",
		},
		{
			name: "directory through symlink",
			entries: func(outside string) []entry {
				return []entry{symlink("./link", outside), dir("./link/sub/")}
			},
			wantErr: "escapes",
		},
		{
			name:    "hard link out",
			entries: func(string) []entry { return []entry{hardlink("./evil", "../outside/x")} },
			wantErr: "hard link target",
		},
		{
			name:    "absolute hard link",
			entries: func(outside string) []entry { return []entry{hardlink("./evil", outside+"/x")} },
			wantErr: "hard link target",
		},
		{
			name:    "device",
			entries: func(string) []entry { return []entry{{name: "./dev", typ: tar.TypeChar, mode: 0o600}} },
			wantErr: "unsupported tar entry type",
		},
		{
			name:    "overwrite",
			entries: func(string) []entry { return []entry{file("./a", "1"), file("./a", "2")} },
			wantErr: "file exists",
		},
		{
			name:    "file called dot",
			entries: func(string) []entry { return []entry{file(".", "x")} },
			wantErr: "only a directory",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			outside := filepath.Join(parent, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(parent, "out")
			err := unpack(bytes.NewReader(testDeb(t, tc.entries(outside)...)), out)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
			}
			assertConfined(t, parent)
		})
	}
}

// assertConfined checks that unpacking into parent/out left parent with
// only out and an empty outside directory.
func assertConfined(t testing.TB, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "out" && e.Name() != "outside" {
			t.Errorf("unpacking created %s next to the target", e.Name())
		}
	}
	if entries, err := os.ReadDir(filepath.Join(parent, "outside")); err != nil || len(entries) != 0 {
		t.Errorf("unpacking wrote %d entries outside the target (%v)", len(entries), err)
	}
}

func TestUnpackFormat(t *testing.T) {
	data := tarball(t, []entry{dir("./"), dir("./etc/"), file("./etc/x", "contents")})
	binary := member{"debian-binary", []byte("2.0\n")}
	control := member{"control.tar.xz", []byte("not read")}
	for _, tc := range []struct {
		name    string
		deb     []byte
		wantErr string
	}{
		{name: "minimal", deb: arArchive(binary, member{"data.tar", data})},
		{name: "with control and signature", deb: arArchive(binary, control, member{"data.tar.gz", gzipped(t, data)}, member{"_gpgbuilder", []byte("sig")})},
		{name: "empty file", deb: nil, wantErr: "reading ar magic"},
		{name: "not ar", deb: []byte("PK\x03\x04 definitely a zip"), wantErr: "not an ar archive"},
		{name: "no members", deb: arArchive(), wantErr: "EOF"},
		{name: "wrong first member", deb: arArchive(control, binary, member{"data.tar", data}), wantErr: "first member is \"control.tar.xz\""},
		{name: "format 3", deb: arArchive(member{"debian-binary", []byte("3.0\n")}, member{"data.tar", data}), wantErr: "unsupported package format version"},
		{name: "no data", deb: arArchive(binary, control), wantErr: "no data member"},
		{name: "two data", deb: arArchive(binary, member{"data.tar", data}, member{"data.tar", data}), wantErr: "more than one data member"},
		{name: "unknown member", deb: arArchive(binary, member{"evil", nil}, member{"data.tar", data}), wantErr: "unexpected package member"},
		{name: "unknown compression", deb: arArchive(binary, member{"data.tar.bz2", data}), wantErr: "unsupported compression"},
		{name: "sparse file", deb: arArchive(binary, member{"data.tar", sparseTar()}), wantErr: "sparse files are not supported"},
		{name: "corrupt gzip", deb: arArchive(binary, member{"data.tar.gz", data}), wantErr: "gzip"},
		{name: "truncated", deb: arArchive(binary, member{"data.tar", data})[:200], wantErr: "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			err := unpack(bytes.NewReader(tc.deb), out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(filepath.Join(out, "etc/x")); err != nil || string(got) != "contents" {
				t.Errorf("etc/x holds %q (%v)", got, err)
			}
		})
	}
}

func TestArReader(t *testing.T) {
	valid := arArchive(member{"one", []byte("odd")}, member{"two/", []byte("even")})
	for _, tc := range []struct {
		name    string
		in      []byte
		want    []string // name=contents
		wantErr string
	}{
		{name: "two members", in: valid, want: []string{"one=odd", "two=even"}},
		// Some writers leave out the padding after the last member.
		{name: "last padding missing", in: arArchive(member{"one", []byte("odd")})[:len(arMagic)+arHeaderSize+3], want: []string{"one=odd"}},
		{name: "empty member", in: arArchive(member{"empty", nil}), want: []string{"empty="}},
		{name: "truncated header", in: valid[:len(arMagic)+10], wantErr: "reading ar header"},
		{name: "truncated member", in: valid[:len(arMagic)+arHeaderSize+1], wantErr: "unexpected EOF"},
		{name: "bad terminator", in: append([]byte(arMagic), bytes.Repeat([]byte(" "), arHeaderSize)...), wantErr: "missing terminator"},
		{name: "negative size", in: []byte(arMagic + "x               0           0     0     100644  -1        `\n"), wantErr: "bad size"},
		{name: "plus size", in: []byte(arMagic + "x               0           0     0     100644  +1        `\nx\n"), wantErr: "bad size"},
		{name: "garbage size", in: []byte(arMagic + "x               0           0     0     100644  1x        `\n"), wantErr: "bad size"},
		{name: "slash in name", in: arArchive(member{"a/b", nil}), wantErr: "bad ar member name"},
		{name: "gnu symbol table name", in: arArchive(member{"/", nil}), wantErr: "bad ar member name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readAr(bytes.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got members %q, want %q", got, tc.want)
			}
		})
	}
}

// readAr returns name=contents for every member of an ar archive.
func readAr(r io.Reader) ([]string, error) {
	ar := newArReader(r)
	var members []string
	for {
		name, size, err := ar.Next()
		if errors.Is(err, io.EOF) {
			return members, nil
		}
		if err != nil {
			return members, err
		}
		body, err := io.ReadAll(ar)
		if err != nil {
			return members, err
		}
		if int64(len(body)) != size {
			return members, errors.New("member shorter than its size")
		}
		members = append(members, name+"="+string(body))
	}
}

func FuzzArReader(f *testing.F) {
	f.Add(arArchive(member{"debian-binary", []byte("2.0\n")}, member{"x", []byte("odd")}))
	f.Add(arArchive(member{"a", nil}))
	f.Add([]byte(arMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		members, err := readAr(bytes.NewReader(data))
		if err != nil {
			return
		}
		total := len(arMagic)
		for _, m := range members {
			_, body, _ := strings.Cut(m, "=")
			total += arHeaderSize + len(body)
		}
		if total > len(data) {
			t.Errorf("read %d bytes of members and headers from %d bytes of input", total, len(data))
		}
	})
}

// FuzzUnpack checks that no package, however malformed, makes Unpack panic
// or write outside its target directory.
func FuzzUnpack(f *testing.F) {
	f.Add(testDeb(f, dir("./"), dir("./usr/"), file("./usr/a", "contents"), symlink("./usr/b", "a"), hardlink("./usr/c", "./usr/a")))
	f.Add(testDeb(f, symlink("./link", "/tmp"), file("./link/evil", "x")))
	f.Add(testDeb(f, symlink("./link", "../outside"), file("./link/evil", "x")))
	f.Add(testDeb(f, file("../evil", "x")))
	f.Add(arArchive(member{"debian-binary", []byte("2.0\n")}, member{"data.tar.gz", gzipped(f, tarball(f, []entry{file("./a", "b")}))}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		if err := os.Mkdir(filepath.Join(parent, "outside"), 0o755); err != nil {
			t.Fatal(err)
		}
		_ = unpack(bytes.NewReader(data), filepath.Join(parent, "out"))
		assertConfined(t, parent)
	})
}
