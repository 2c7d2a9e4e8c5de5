package structfs

import (
	"errors"
	"fmt"
	"strings"
)

// MaxNameLen is the longest name a path component may have, Linux's
// NAME_MAX, which EROFS and cpio extraction both rely on.
const MaxNameLen = 255

// splitPath returns the components of the absolute path p, none for "/", or
// why p is invalid. It accepts only clean paths, so that every node has
// exactly one spelling.
func splitPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, errors.New("not absolute")
	}
	if p == "/" {
		return nil, nil
	}
	parts := strings.Split(p[1:], "/")
	for _, c := range parts {
		switch {
		case c == "":
			return nil, errors.New("empty component")
		case c == "." || c == "..":
			return nil, fmt.Errorf("%q component", c)
		case len(c) > MaxNameLen:
			return nil, fmt.Errorf("component longer than %d bytes", MaxNameLen)
		case strings.IndexByte(c, 0) >= 0:
			return nil, errors.New("NUL byte")
		}
	}
	return parts, nil
}

// childPath returns the path of rel, a relative slash-separated path, inside
// the directory with the absolute path dir.
func childPath(dir, rel string) string {
	if dir == "/" {
		return "/" + rel
	}
	return dir + "/" + rel
}
