package kmod

import (
	"strings"
	"testing"
)

// The expectations below agree with glibc's fnmatch(pattern, s, 0), which
// is what modprobe uses.
func TestPatternMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		// Real aliases from Debian 12's kernel modules.
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001041sv00001AF4sd00001100bc01sc00i00", true},
		{"pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00008086d00001000sv00001AF4sd00000001bc02sc00i00", false},
		{"pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc08i02", true},
		{"pci:v*d*sv*sd*bc01sc08i02*", "pci:v0000144Dd0000A808sv0000144Dsd0000A801bc01sc06i01", false},
		{"pci:v*d*sv*sd*bc01sc06i01*", "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", true},
		{"virtio:d00000001v*", "virtio:d00000001v00001AF4", true},
		{"virtio:d00000001v*", "virtio:d00000002v00001AF4", false},
		{"virtio:d00000001v*", "virtio:d0000000", false},
		{"usb:v1554p5010d400[0-1]dc*dsc*dp*ic*isc*ip*in*", "usb:v1554p5010d4001dc00dsc00dp00icFFiscFFipFFin00", true},
		{"usb:v1554p5010d400[0-1]dc*dsc*dp*ic*isc*ip*in*", "usb:v1554p5010d4002dc00dsc00dp00icFFiscFFipFFin00", false},
		{"usb:v1554p5010d3[0-9A-E]*dc*dsc*dp*ic*isc*ip*in*", "usb:v1554p5010d3B00dc00dsc00dp00ic08isc06ip50in00", true},
		{"usb:v1554p5010d3[0-9A-E]*dc*dsc*dp*ic*isc*ip*in*", "usb:v1554p5010d3F00dc00dsc00dp00ic08isc06ip50in00", false},
		{"dmi:bvnIBM:bvrI[MU]ET??WW*", "dmi:bvnIBM:bvrIMET42WW(1.09):bd01/01/2010:", true},
		{"dmi:bvnIBM:bvrI[MU]ET??WW*", "dmi:bvnIBM:bvrIXET42WW(1.09):", false},
		{"dmi:bvnIBM:bvrI[MU]ET??WW*", "dmi:bvnIBM:bvrIMET4WW", false},
		{"dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnDell Inc.:bvr1.2:svnDELL:pnX", true},
		{"dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnLENOVO:bvr1.2:svnLENOVO:pnX", false},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0001,0094,00E6", true},
		{"cpu:type:x86,ven*fam*mod*:feature:*0094*", "cpu:type:x86,ven0000fam0006mod003A:feature:,0000,0001,0095", false},
		{"mdio:0000000000010011011110100001????", "mdio:00000000000100110111101000011010", true},
		{"mdio:0000000000010011011110100001????", "mdio:0000000000010011011110100001101", false},
		{"crc32c", "crc32c", true},
		{"crc32c", "crc32c-intel", false},
		{"crc32c", "crc32", false},

		// The wildcards one by one.
		{"", "", true},
		{"", "a", false},
		{"*", "", true},
		{"*", "anything", true},
		{"a*", "a", true},
		{"*a", "bba", true},
		{"*a", "bab", false},
		{"a*b*c", "aXbYbZc", true},
		{"a*b*c", "aXbYbZcd", false},
		{"a**b", "ab", true},
		{"*ab*ab", "xabyabab", true},
		{"*aab", "aaab", true},
		{"?", "", false},
		{"?", "x", true},
		{"?", "xy", false},
		{"a?c", "abc", true},
		{"*?", "", false},
		{"*?", "a", true},
		{"[abc]", "b", true},
		{"[abc]", "d", false},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[!a-c]x", "dx", true},
		{"[^a-c]x", "dx", true},
		{"[]]", "]", true},
		{"[!]]", "]", false},
		{"[!]]", "a", true},
		{"[a-]", "-", true},
		{"[-a]", "-", true},
		{"[\\]]", "]", true},
		{"[a\\-c]", "b", false},
		{"[a\\-c]", "-", true},
		{"\\*", "*", true},
		{"\\*", "a", false},
		{"a\\?", "a?", true},
		{"a\\?", "ab", false},
		{"\\[a]", "[a]", true},
		// An unterminated bracket is an ordinary character.
		{"[ab", "[ab", true},
		{"a[", "a[", true},
		{"[!", "[!", true},
		// No special treatment of slashes or leading dots.
		{"*", "a/b", true},
		{"a?b", "a/b", true},
		{"*", ".hidden", true},
	} {
		p, err := CompilePattern(tc.pattern)
		if err != nil {
			t.Errorf("CompilePattern(%q): %v", tc.pattern, err)
			continue
		}
		if got := p.Match(tc.s); got != tc.want {
			t.Errorf("%q matching %q: got %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
		if got := refMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("reference matcher: %q matching %q: got %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestPatternPrefix(t *testing.T) {
	for _, tc := range []struct{ pattern, prefix string }{
		{"pci:v00001AF4d*sv*", "pci:v00001AF4d"},
		{"crc32c", "crc32c"},
		{"*foo", ""},
		{"usb:v1554p5010d400[0-1]dc*", "usb:v1554p5010d400"},
		{"a\\*b*", "a*b"},
		{"dmi:bvnIBM:bvrI[MU]ET??WW*", "dmi:bvnIBM:bvrI"},
		{"x?", "x"},
	} {
		p, err := CompilePattern(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if p.prefix != tc.prefix {
			t.Errorf("prefix of %q: got %q, want %q", tc.pattern, p.prefix, tc.prefix)
		}
	}
}

func TestPatternErrors(t *testing.T) {
	for _, tc := range []struct{ pattern, wantErr string }{
		{"abc\\", "lone backslash"},
		{"[[:digit:]]", "named classes"},
		{"[[=a=]]", "named classes"},
		{"[z-a]", "reversed"},
	} {
		_, err := CompilePattern(tc.pattern)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("CompilePattern(%q): got error %v, want one containing %q", tc.pattern, err, tc.wantErr)
		}
	}
}

// refMatch is a second, deliberately naive implementation of the same
// matching rules, working on the uncompiled pattern by recursion (memoized,
// so that many stars stay cheap). The fuzz test compares the two.
func refMatch(p, s string) bool {
	memo := make(map[[2]int]bool)
	var match func(pi, si int) bool
	match = func(pi, si int) bool {
		key := [2]int{pi, si}
		if r, ok := memo[key]; ok {
			return r
		}
		r := refMatchAt(p[pi:], s[si:], func(dp, ds int) bool { return match(pi+dp, si+ds) })
		memo[key] = r
		return r
	}
	return match(0, 0)
}

// refMatchAt matches s against p, using rest(dp, ds) to match what is left
// after skipping dp bytes of the pattern and ds bytes of s.
func refMatchAt(p, s string, rest func(dp, ds int) bool) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if rest(1, i) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && rest(1, 1)
	case '\\':
		if len(p) < 2 {
			return false
		}
		return s != "" && s[0] == p[1] && rest(2, 1)
	case '[':
		if end, ok := refSetEnd(p); ok {
			return s != "" && refSetHas(p[1:end], s[0]) && rest(end+1, 1)
		}
	}
	return s != "" && s[0] == p[0] && rest(1, 1)
}

// refSetEnd returns the index of the ] closing the bracket expression at
// the start of p.
func refSetEnd(p string) (int, bool) {
	i := 1
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		i++
	}
	if i < len(p) && p[i] == ']' {
		i++
	}
	for ; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case ']':
			return i, true
		}
	}
	return 0, false
}

// refSetHas tells whether the bracket expression body (between the
// brackets) contains c.
func refSetHas(body string, c byte) bool {
	negate := body != "" && (body[0] == '!' || body[0] == '^')
	if negate {
		body = body[1:]
	}
	var chars []byte
	for i := 0; i < len(body); i++ {
		if body[i] == '\\' && i+1 < len(body) {
			i++
		}
		chars = append(chars, body[i])
		// A range: the - is not escaped and not the last character.
		if i+2 < len(body) && body[i+1] == '-' {
			lo := body[i]
			i += 2
			if body[i] == '\\' && i+1 < len(body) {
				i++
			}
			for x := int(lo) + 1; x <= int(body[i]); x++ {
				chars = append(chars, byte(x))
			}
		}
	}
	has := strings.IndexByte(string(chars), c) >= 0
	return has != negate
}

// FuzzPatternMatch compares the compiled matcher with refMatch, and checks
// that a pattern always matches the string it describes literally once its
// wildcards are escaped.
func FuzzPatternMatch(f *testing.F) {
	f.Add("pci:v00001AF4d*sv*sd*bc*sc*i*", "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00")
	f.Add("usb:v1554p5010d3[0-9A-E]*dc*", "usb:v1554p5010d3B00dc00")
	f.Add("dmi:*:[bs]vnD[Ee][Ll][Ll]*:*", "dmi:bvnDell Inc.:bvr1.2:")
	f.Add("[!]a-]\\*?*", "b*xy")
	f.Add("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("pci:v**********00401AF0d*sv*sd*bc*sc*i*", "pci:v00001AF4f00001000sv000\x801AF4sd00000001bc02sc00i00")
	f.Fuzz(func(t *testing.T, pat, s string) {
		p, err := CompilePattern(pat)
		if err != nil {
			return
		}
		if got, want := p.Match(s), refMatch(pat, s); got != want {
			t.Errorf("%q matching %q: got %v, reference says %v", pat, s, got, want)
		}
		var escaped strings.Builder
		for i := 0; i < len(s); i++ {
			if strings.IndexByte(`*?[\`, s[i]) >= 0 {
				escaped.WriteByte('\\')
			}
			escaped.WriteByte(s[i])
		}
		lit, err := CompilePattern(escaped.String())
		if err != nil {
			t.Fatalf("escaped literal %q: %v", escaped.String(), err)
		}
		if !lit.Match(s) || lit.prefix != s {
			t.Errorf("escaped literal %q does not match %q exactly", escaped.String(), s)
		}
	})
}
