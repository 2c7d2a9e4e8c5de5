package declarative

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type testRoot struct {
	Directory
	Config configFile `file:"config.pb"`
	Data   testData   `dir:"data"`
	Cache  Directory  `dir:"cache"`
	// Fields without tags that are not nodes are left alone.
	Counter int
}

type configFile struct {
	File
}

type testData struct {
	Directory
	Credentials struct {
		Directory
		Certificate File `file:"cert.pem"`
		Key         File `file:"cert-key.pem"`
	} `dir:"credentials"`
	Roles File `file:"roles.pb"`
}

func TestPlace(t *testing.T) {
	var r testRoot
	if err := Place(&r, "/srv/node/"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{r.FullPath(), "/srv/node"},
		{r.Config.FullPath(), "/srv/node/config.pb"},
		{r.Data.FullPath(), "/srv/node/data"},
		{r.Data.Credentials.FullPath(), "/srv/node/data/credentials"},
		{r.Data.Credentials.Certificate.FullPath(), "/srv/node/data/credentials/cert.pem"},
		{r.Data.Credentials.Key.FullPath(), "/srv/node/data/credentials/cert-key.pem"},
		{r.Data.Roles.FullPath(), "/srv/node/data/roles.pb"},
		{r.Cache.FullPath(), "/srv/node/cache"},
	} {
		if tc.got != tc.want {
			t.Errorf("FullPath() = %q, want %q", tc.got, tc.want)
		}
	}
}

func TestPlaceRejects(t *testing.T) {
	type untagged struct {
		Directory
		Roles File
	}
	type bothTags struct {
		Directory
		Roles File `dir:"a" file:"b"`
	}
	type dirNotDir struct {
		Directory
		Roles File `dir:"roles"`
	}
	type fileNotFile struct {
		Directory
		Roles Directory `file:"roles"`
	}
	type notANode struct {
		Directory
		Roles string `file:"roles"`
	}
	type duplicate struct {
		Directory
		A File `file:"x"`
		B File `file:"x"`
	}
	type slash struct {
		Directory
		A File `file:"a/b"`
	}
	type dotdot struct {
		Directory
		A Directory `dir:".."`
	}
	type empty struct {
		Directory
		A File `file:""`
	}
	type unexported struct {
		Directory
		a File `file:"a"`
	}
	_ = unexported{}.a
	type noDirectory struct {
		A File `file:"a"`
	}
	for _, tc := range []struct {
		name string
		tree any
		path string
		want string
	}{
		{"untagged node", &untagged{}, "/x", "without a dir or file tag"},
		{"both tags", &bothTags{}, "/x", "both a dir and a file tag"},
		{"dir tag on a file", &dirNotDir{}, "/x", "tagged dir"},
		{"file tag on a directory", &fileNotFile{}, "/x", "tagged file"},
		{"file tag on a string", &notANode{}, "/x", "tagged file"},
		{"duplicate name", &duplicate{}, "/x", `both named "x"`},
		{"slash", &slash{}, "/x", "contains a slash"},
		{"dot dot", &dotdot{}, "/x", "not a name"},
		{"empty name", &empty{}, "/x", "empty name"},
		{"unexported", &unexported{}, "/x", "not exported"},
		{"root without Directory", &noDirectory{}, "/x", "not a directory"},
		{"not a pointer", testRoot{}, "/x", "not a pointer"},
		{"relative path", &testRoot{}, "x", "not an absolute path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Place(tc.tree, tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Place = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestMkdirAllAndFiles(t *testing.T) {
	dir := t.TempDir()
	var r testRoot
	if err := Place(&r, dir); err != nil {
		t.Fatal(err)
	}
	if err := MkdirAll(&r, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{r.Data.FullPath(), r.Data.Credentials.FullPath(), r.Cache.FullPath()} {
		fi, err := os.Stat(d)
		if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v, %v; want a directory with mode 0700", d, fi, err)
		}
	}
	// Files are not created.
	if _, err := os.Stat(r.Data.Roles.FullPath()); !os.IsNotExist(err) {
		t.Errorf("MkdirAll created the file %s: %v", r.Data.Roles.FullPath(), err)
	}

	f := &r.Data.Credentials.Key
	if _, err := f.Read(); !os.IsNotExist(err) {
		t.Errorf("Read of a missing file: %v, want ErrNotExist", err)
	}
	for _, content := range []string{"first", "second, longer"} {
		if err := f.Write([]byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := f.Read()
		if err != nil || string(got) != content {
			t.Errorf("Read = %q, %v; want %q", got, err, content)
		}
	}
	fi, err := os.Stat(f.FullPath())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the written file: %v, %v; want mode 0600", fi, err)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(f.FullPath()))
	if err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want only the file", entries, err)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove(); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}

	var unplaced File
	if err := unplaced.Write(nil, 0o600); err == nil {
		t.Error("writing an unplaced file succeeded")
	}
}
