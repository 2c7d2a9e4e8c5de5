package localstorage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	cpb "metropolis.dev/metropolis/proto/common"
	ppb "metropolis.dev/metropolis/proto/private"
	"metropolis.dev/osbase/gpt"
)

func TestNewPlacesTree(t *testing.T) {
	r, err := New("/")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{r.ESP.Metropolis.SealedConfiguration.FullPath(), "/esp/metropolis/sealed_configuration.pb"},
		{r.ESP.Metropolis.NodeParameters.FullPath(), "/esp/metropolis/parameters.pb"},
		{r.ESP.EFI.Boot.BootX64.FullPath(), "/esp/EFI/BOOT/BOOTX64.EFI"},
		{r.Data.Etcd.Data.FullPath(), "/data/etcd/data"},
		{r.Data.Node.Credentials.Key.FullPath(), "/data/node/credentials/cert-key.pem"},
		{r.Data.Kubernetes.ClusterNetworking.PrivateKey.FullPath(), "/data/kubernetes/clusternet/private.key"},
		{r.Ephemeral.Consensus.ClientSocket.FullPath(), "/ephemeral/consensus/client.sock"},
		{r.Tmp.FullPath(), "/tmp"},
		{r.Run.FullPath(), "/run"},
	} {
		if tc.got != tc.want {
			t.Errorf("FullPath() = %q, want %q", tc.got, tc.want)
		}
	}
}

// fakeDisk is a disk for findNodeDisk: its sysfs directory and partition
// table.
type fakeDisk struct {
	name  string
	parts []gpt.GUID
	// kernelParts are the partition numbers the kernel knows; nil means
	// all.
	kernelParts []int
	noGPT       bool
	size        string
}

// fakeSystem writes a sysfs block directory and a dev directory with the
// disks as image files, and returns both.
func fakeSystem(t *testing.T, disks []fakeDisk) (sysBlock, dev string) {
	t.Helper()
	root := t.TempDir()
	sysBlock, dev = filepath.Join(root, "sys"), filepath.Join(root, "dev")
	for _, d := range []string{sysBlock, dev} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range disks {
		size := d.size
		if size == "" {
			size = "65536"
		}
		write(filepath.Join(sysBlock, d.name, "size"), size+"\n")
		img := make([]byte, 8<<20)
		if !d.noGPT {
			tbl := &gpt.Table{DiskGUID: gpt.DerivedGUID(d.name, "disk"), DiskSize: int64(len(img))}
			for i, typ := range d.parts {
				p := &gpt.Partition{Type: typ, ID: gpt.DerivedGUID(d.name, string(rune('a'+i))), Name: "p"}
				if err := tbl.AddPartition(p, 1<<20, 0); err != nil {
					t.Fatal(err)
				}
			}
			w := &sliceWriter{b: img}
			if err := tbl.Write(w); err != nil {
				t.Fatal(err)
			}
		}
		write(filepath.Join(dev, d.name), string(img))
		known := d.kernelParts
		if known == nil {
			for i := range d.parts {
				known = append(known, i+1)
			}
		}
		for _, n := range known {
			write(filepath.Join(sysBlock, d.name, d.name+"p"+string(rune('0'+n)), "partition"), string(rune('0'+n))+"\n")
		}
	}
	return sysBlock, dev
}

type sliceWriter struct{ b []byte }

func (w *sliceWriter) WriteAt(p []byte, off int64) (int, error) {
	return copy(w.b[off:], p), nil
}

var (
	esp  = gpt.TypeEFISystem
	data = gpt.TypeMetropolisData
	sysA = gpt.TypeMetropolisSystemA
	sysB = gpt.TypeMetropolisSystemB
	// other is a partition type the node does not know.
	other = gpt.DerivedGUID("test", "other type")
)

func TestFindNodeDisk(t *testing.T) {
	nodeESP := gpt.DerivedGUID("vdb", "a")
	for _, tc := range []struct {
		name  string
		disks []fakeDisk
		espID *gpt.GUID
		// want is the disk found, or err part of the error.
		want, err string
	}{
		{
			name: "one node disk among others",
			disks: []fakeDisk{
				{name: "vda", parts: []gpt.GUID{other, data}},
				{name: "vdb", parts: []gpt.GUID{esp, sysA, sysB, data}},
				{name: "vdc", noGPT: true},
				{name: "sr0", size: "0"},
				{name: "loop0", parts: []gpt.GUID{esp, data}},
				{name: "dm-0", parts: []gpt.GUID{esp, data}},
			},
			want: "vdb",
		},
		{
			name:  "without system partitions",
			disks: []fakeDisk{{name: "vdb", parts: []gpt.GUID{esp, other, data}}},
			want:  "vdb",
		},
		{
			name: "two node disks",
			disks: []fakeDisk{
				{name: "vda", parts: []gpt.GUID{esp, data}},
				{name: "vdb", parts: []gpt.GUID{esp, sysA, data}},
			},
			err: "refusing to guess",
		},
		{
			name: "two node disks, the firmware names one",
			disks: []fakeDisk{
				{name: "vda", parts: []gpt.GUID{esp, data}},
				{name: "vdb", parts: []gpt.GUID{esp, sysA, data}},
			},
			espID: &nodeESP,
			want:  "vdb",
		},
		{
			name:  "the firmware names another ESP",
			disks: []fakeDisk{{name: "vda", parts: []gpt.GUID{esp, data}}},
			espID: &nodeESP,
			err:   "not " + nodeESP.String() + ", the one the node booted from",
		},
		{
			name:  "two data partitions",
			disks: []fakeDisk{{name: "vda", parts: []gpt.GUID{esp, data, data}}},
			err:   "partitions 2 and 3 both have the type",
		},
		{
			name:  "no data partition",
			disks: []fakeDisk{{name: "vda", parts: []gpt.GUID{esp, sysA}}},
			err:   "no EFI system partition and Metropolis data partition",
		},
		{
			name:  "a partition the kernel does not know",
			disks: []fakeDisk{{name: "vda", parts: []gpt.GUID{esp, data}, kernelParts: []int{1}}},
			err:   "no device for partition 2",
		},
		{
			name:  "no disk",
			disks: []fakeDisk{{name: "vda", noGPT: true}},
			err:   "vda: gpt: no GPT header",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sysBlock, dev := fakeSystem(t, tc.disks)
			d, err := findNodeDisk(sysBlock, dev, tc.espID)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("findNodeDisk = %v, %v; want an error containing %q", d, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.path != filepath.Join(dev, tc.want) {
				t.Errorf("found %s, want %s", d.path, tc.want)
			}
			if d.esp.number != 1 || d.esp.path != filepath.Join(dev, tc.want+"p1") || d.esp.entry.Type != gpt.TypeEFISystem {
				t.Errorf("ESP is %+v, want partition 1, %sp1", d.esp, tc.want)
			}
			if d.data.entry.Type != gpt.TypeMetropolisData || d.data.path != filepath.Join(dev, tc.want+"p"+string(rune('0'+d.data.number))) {
				t.Errorf("data is %+v", d.data)
			}
		})
	}
}

func TestSealedConfigurationPlain(t *testing.T) {
	r, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.ESP.Metropolis.MkdirAll(0o755); err != nil {
		t.Fatal(err)
	}
	f := &r.ESP.Metropolis.SealedConfiguration
	if _, err := f.Unseal(nil); !errors.Is(err, ErrNoSealedConfiguration) {
		t.Errorf("Unseal of a missing file: got %v, want ErrNoSealedConfiguration", err)
	}
	sc := &ppb.SealedConfiguration{
		NodeUnlockKey:   bytes.Repeat([]byte{1}, 32),
		JoinKey:         []byte("join key"),
		StorageSecurity: cpb.NodeStorageSecurity_NODE_STORAGE_SECURITY_ENCRYPTED,
	}
	if err := f.Seal(sc, nil); err != nil {
		t.Fatal(err)
	}
	got, err := f.Unseal(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, sc) {
		t.Errorf("Unseal = %v, want %v", got, sc)
	}
	if err := os.WriteFile(f.FullPath(), []byte("\xff\xff not a protobuf"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Unseal(nil); err == nil || !strings.Contains(err.Error(), "holds no SealedConfiguration") {
		t.Errorf("Unseal of garbage: %v", err)
	}
}
