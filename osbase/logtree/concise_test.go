package logtree

import (
	"slices"
	"strings"
	"testing"
)

func TestShorten(t *testing.T) {
	for _, tc := range []struct {
		dict ShortenDictionary
		dn   DN
		want string
	}{
		{MetropolisShortenDict, "", ""},
		{MetropolisShortenDict, "root.role.controlplane.kubernetes", "root.role.cplane.k8s"},
		{MetropolisShortenDict, "root.networking.network", "root.net.net"},
		{MetropolisShortenDict, "root.kubernetes-apiserver", "root.k8s-apiserver"},
		{nil, "root.kubernetes", "root.kubernetes"},
		{ShortenDictionary{{"ab", "x"}, {"x", "y"}}, "ab.cab", "y.cy"},
	} {
		if got := tc.dict.Shorten(tc.dn); got != tc.want {
			t.Errorf("Shorten(%q) = %q, want %q", tc.dn, got, tc.want)
		}
	}
}

func TestConciseString(t *testing.T) {
	// "13:30:45 I root.k8s: " is 21 characters wide.
	indent := strings.Repeat(" ", 21)
	for _, tc := range []struct {
		name     string
		entry    *LogEntry
		dict     ShortenDictionary
		maxWidth int
		want     []string
	}{
		{
			name:  "Leveled",
			entry: leveled("root.kubernetes", INFO, "a.go", 1, "hello"),
			dict:  MetropolisShortenDict,
			want:  []string{"13:30:45 I root.k8s: hello"},
		},
		{
			name:  "NoDictionary",
			entry: leveled("root.kubernetes", ERROR, "a.go", 1, "hello"),
			want:  []string{"13:30:45 E root.kubernetes: hello"},
		},
		{
			name:  "RootDN",
			entry: leveled("", FATAL, "a.go", 1, "hello"),
			want:  []string{"13:30:45 F hello"},
		},
		{
			name:  "Raw",
			entry: raw("root.proc", "output"),
			want:  []string{"13:30:45 R root.proc: output"},
		},
		{
			name:  "MultiLine",
			entry: leveled("root.kubernetes", WARNING, "a.go", 1, "one", "two"),
			dict:  MetropolisShortenDict,
			want:  []string{"13:30:45 W root.k8s: one", indent + "two"},
		},
		{
			name:     "Wrapped",
			entry:    leveled("root.kubernetes", INFO, "a.go", 1, strings.Repeat("a", 20)+strings.Repeat("b", 20)+"c", "short"),
			dict:     MetropolisShortenDict,
			maxWidth: 41,
			want: []string{
				"13:30:45 I root.k8s: " + strings.Repeat("a", 20),
				indent + strings.Repeat("b", 20),
				indent + "c",
				indent + "short",
			},
		},
		{
			name:     "FitsExactly",
			entry:    leveled("root.kubernetes", INFO, "a.go", 1, strings.Repeat("a", 20)),
			dict:     MetropolisShortenDict,
			maxWidth: 41,
			want:     []string{"13:30:45 I root.k8s: " + strings.Repeat("a", 20)},
		},
		{
			name:     "WrapCountsCharactersNotBytes",
			entry:    leveled("root.kubernetes", INFO, "a.go", 1, strings.Repeat("é", 21)),
			dict:     MetropolisShortenDict,
			maxWidth: 41,
			want:     []string{"13:30:45 I root.k8s: " + strings.Repeat("é", 20), indent + "é"},
		},
		{
			name:     "TooNarrowKeepsMinimumWidth",
			entry:    leveled("root.kubernetes", INFO, "a.go", 1, strings.Repeat("a", 25)),
			dict:     MetropolisShortenDict,
			maxWidth: 10,
			want:     []string{"13:30:45 I root.k8s: " + strings.Repeat("a", 20), indent + "aaaaa"},
		},
		{
			name:     "Invalid",
			entry:    &LogEntry{DN: "root"},
			maxWidth: 80,
			want:     []string{"root: INVALID"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.entry.ConciseString(tc.dict, tc.maxWidth); !slices.Equal(got, tc.want) {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}
