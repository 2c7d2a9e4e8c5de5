package kmod

import (
	"errors"
	"fmt"
	"strings"
)

// A Pattern is a compiled module alias pattern. Alias patterns use the
// shell wildcards of fnmatch(3) without flags, as modprobe matches them:
// * matches any string, ? any single byte, [...] one byte of a set (with
// ranges, and ! or ^ to negate it), and \ makes the next byte literal.
// Named classes such as [[:digit:]] are not supported; no kernel module
// uses them, and the image build rejects aliases that do not compile.
type Pattern struct {
	// prefix is the literal text before the first wildcard. It is what
	// the alias index is keyed by.
	prefix string
	// rest matches what follows the prefix.
	rest []token
}

type tokenKind uint8

const (
	tokenLiteral tokenKind = iota
	tokenAnyByte
	tokenStar
	tokenSet
)

type token struct {
	kind tokenKind
	// literal is the text a tokenLiteral matches.
	literal string
	// set holds one bit per byte value for tokenSet.
	set *byteSet
}

type byteSet [4]uint64

func (s *byteSet) add(b byte)           { s[b>>6] |= 1 << (b & 63) }
func (s *byteSet) contains(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }

// CompilePattern compiles an alias pattern.
func CompilePattern(p string) (*Pattern, error) {
	var tokens []token
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			tokens = append(tokens, token{kind: tokenLiteral, literal: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			flush()
			// Consecutive stars match what a single one does.
			if len(tokens) == 0 || tokens[len(tokens)-1].kind != tokenStar {
				tokens = append(tokens, token{kind: tokenStar})
			}
		case '?':
			flush()
			tokens = append(tokens, token{kind: tokenAnyByte})
		case '\\':
			if i+1 == len(p) {
				return nil, errors.New("pattern ends in a lone backslash")
			}
			i++
			lit.WriteByte(p[i])
		case '[':
			set, n, err := parseSet(p[i:])
			if err != nil {
				return nil, err
			}
			if set == nil {
				// fnmatch treats an unterminated [ as a literal.
				lit.WriteByte('[')
				continue
			}
			flush()
			tokens = append(tokens, token{kind: tokenSet, set: set})
			i += n - 1
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	pat := &Pattern{rest: tokens}
	if len(tokens) > 0 && tokens[0].kind == tokenLiteral {
		pat.prefix = tokens[0].literal
		pat.rest = tokens[1:]
	}
	return pat, nil
}

// parseSet parses the bracket expression at the start of p and returns the
// set of bytes it matches and its length in p, or a nil set if p holds no
// complete bracket expression.
func parseSet(p string) (*byteSet, int, error) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	var set byteSet
	// next returns the byte at i, honouring a backslash escape.
	next := func() (byte, bool) {
		if i >= len(p) {
			return 0, false
		}
		if p[i] == '\\' {
			if i+1 >= len(p) {
				return 0, false
			}
			i++
		}
		c := p[i]
		i++
		return c, true
	}
	first := true
	for {
		if i >= len(p) {
			return nil, 0, nil
		}
		// A ] right after the opening bracket (and negation) is a
		// member, not the end.
		if p[i] == ']' && !first {
			i++
			break
		}
		if p[i] == '[' && i+1 < len(p) && (p[i+1] == ':' || p[i+1] == '=' || p[i+1] == '.') {
			return nil, 0, fmt.Errorf("bracket expression %q: named classes are not supported", p)
		}
		first = false
		lo, ok := next()
		if !ok {
			return nil, 0, nil
		}
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			i++
			if hi, ok = next(); !ok {
				return nil, 0, nil
			}
			if hi < lo {
				return nil, 0, fmt.Errorf("bracket expression %q: range %c-%c is reversed", p[:i], lo, hi)
			}
		}
		for c := int(lo); c <= int(hi); c++ {
			set.add(byte(c))
		}
	}
	if negate {
		for k := range set {
			set[k] = ^set[k]
		}
	}
	return &set, i, nil
}

// matchRest tells whether s, the part of a string after the pattern's
// prefix, matches the rest of the pattern.
//
// Every token but * matches a fixed number of bytes, so it is enough to
// remember the last * seen and, on a mismatch, let it swallow more bytes
// and retry from there; earlier stars never need to change. When a literal
// follows the *, the retry jumps straight to the literal's next
// occurrence. Matching never recurses and takes O(len(s) * len(rest)) time
// in the worst case.
func (p *Pattern) matchRest(s string) bool {
	ti, si := 0, 0
	star, starSI := -1, 0
	for {
		if ti < len(p.rest) {
			t := &p.rest[ti]
			switch t.kind {
			case tokenStar:
				if ti == len(p.rest)-1 {
					return true
				}
				star, starSI = ti, si
				ti++
				if !p.skipToLiteral(star, s, &starSI) {
					return false
				}
				si = starSI
				continue
			case tokenLiteral:
				if strings.HasPrefix(s[si:], t.literal) {
					si += len(t.literal)
					ti++
					continue
				}
			case tokenAnyByte:
				if si < len(s) {
					si++
					ti++
					continue
				}
			case tokenSet:
				if si < len(s) && t.set.contains(s[si]) {
					si++
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if star < 0 || starSI >= len(s) {
			return false
		}
		starSI++
		if !p.skipToLiteral(star, s, &starSI) {
			return false
		}
		ti, si = star+1, starSI
	}
}

// skipToLiteral moves *si, where the token after the star at index star
// would start matching, to the next position where that token can match if
// it is a literal. It returns false if there is none.
func (p *Pattern) skipToLiteral(star int, s string, si *int) bool {
	t := &p.rest[star+1]
	if t.kind != tokenLiteral {
		return true
	}
	i := strings.Index(s[*si:], t.literal)
	if i < 0 {
		return false
	}
	*si += i
	return true
}

// Match tells whether the whole string s matches the pattern.
func (p *Pattern) Match(s string) bool {
	return strings.HasPrefix(s, p.prefix) && p.matchRest(s[len(p.prefix):])
}
