package debian

import (
	"path/filepath"
	"testing"
)

// TestPinnedPackages fetches every package pinned under third_party/ with
// apt-get and checks it against its pin. The first run on a machine
// downloads about 70 MB; later runs only re-hash the cached files (see
// CacheDir). It needs network access to the Debian mirrors, like the build
// itself.
func TestPinnedPackages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "third_party", "*", PinFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no pin files found under third_party/")
	}
	for _, f := range files {
		pins, err := ReadPins(f)
		if err != nil {
			t.Fatal(err)
		}
		if len(pins) == 0 {
			t.Errorf("%s pins nothing", f)
		}
		for _, pin := range pins {
			t.Run(pin.Package, func(t *testing.T) {
				path, err := Fetch(t.Context(), pin)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%s verified at %s", pin, path)
			})
		}
	}
}
