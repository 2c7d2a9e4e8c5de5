package structfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBytes(t *testing.T) {
	b := Bytes([]byte("content"))
	for range 2 { // Each Open starts from the beginning.
		var buf bytes.Buffer
		if err := CopyBlob(&buf, b); err != nil {
			t.Fatal(err)
		}
		if buf.String() != "content" || b.Size() != 7 {
			t.Errorf("got %q with size %d", buf.String(), b.Size())
		}
	}
}

func TestHostFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("12345")
	b, err := HostFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if b.Size() != 5 {
		t.Errorf("Size() = %d, want 5", b.Size())
	}
	// The content is read when copied, not when the Blob is made.
	write("abcde")
	var buf bytes.Buffer
	if err := CopyBlob(&buf, b); err != nil || buf.String() != "abcde" {
		t.Errorf("CopyBlob = %q, %v; want the content at copy time", buf.String(), err)
	}
	for _, tc := range []struct{ content, msg string }{
		{"abc", "ended after 3 of 5 bytes"},
		{"abcdef", "longer than its size of 5 bytes"},
	} {
		write(tc.content)
		err := CopyBlob(&bytes.Buffer{}, b)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("CopyBlob after changing the file to %q: %v, want error with %q", tc.content, err, tc.msg)
		}
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := CopyBlob(&bytes.Buffer{}, b); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("CopyBlob of a removed file: %v, want an error naming it", err)
	}
}

func TestHostFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ path, msg string }{
		{dir, "is a d---------, not a regular file"},
		{filepath.Join(dir, "missing"), "no such file"},
	} {
		if _, err := HostFile(tc.path); err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("HostFile(%s) = %v, want error naming it with %q", tc.path, err, tc.msg)
		}
	}
}
