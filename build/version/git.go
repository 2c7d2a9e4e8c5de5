package version

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	nodeversion "metropolis.dev/metropolis/version"
)

// firstRelease is the release versions count towards before any release tag
// exists.
var firstRelease = nodeversion.Release{Major: 0, Minor: 1, Patch: 0}

// releaseTagRE matches release tags: vX.Y.Z with decimal numbers without
// leading zeros. Other tags (v1.0.0-rc1, vfoo) are not releases.
var releaseTagRE = regexp.MustCompile(`^v(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$`)

// commitRE matches a full commit hash, SHA-1 or SHA-256.
var commitRE = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// FromGit computes the version of the work tree of the git repository at dir.
//
// The release is the highest release tag (see releaseTagRE) in the history of
// HEAD, by version rather than by date. A shallow clone is refused: its history is
// cut, so both the tag and the commit count would be wrong.
func FromGit(ctx context.Context, dir string) (Version, error) {
	git := func(args ...string) (string, error) { return runGit(ctx, dir, args...) }

	shallow, err := git("rev-parse", "--is-shallow-repository")
	if err != nil {
		return Version{}, err
	}
	if shallow == "true" {
		return Version{}, fmt.Errorf("%s is a shallow clone, whose version cannot be computed: fetch its whole history with git fetch --unshallow", dir)
	}
	commit, err := git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
	if err != nil {
		return Version{}, fmt.Errorf("%s has no commit to build: %w", dir, err)
	}
	if !commitRE.MatchString(commit) {
		return Version{}, fmt.Errorf("git printed %q as the hash of HEAD", commit)
	}
	v := Version{Release: firstRelease, Commit: commit}

	tags, err := git("tag", "--merged", "HEAD", "--list", "v*")
	if err != nil {
		return Version{}, err
	}
	since := "HEAD"
	if release, tag, ok := latestRelease(strings.Fields(tags)); ok {
		v.Release = release
		since = "refs/tags/" + tag + "..HEAD"
	}
	count, err := git("rev-list", "--count", since)
	if err != nil {
		return Version{}, err
	}
	if v.CommitsSinceRelease, err = strconv.Atoi(count); err != nil {
		return Version{}, fmt.Errorf("git printed %q as a commit count", count)
	}

	// Untracked files do not count: builds read only tracked ones.
	status, err := git("status", "--porcelain", "--untracked-files=no")
	if err != nil {
		return Version{}, err
	}
	v.Dirty = status != ""
	return v, nil
}

// latestRelease returns the highest release among tags, and its tag.
func latestRelease(tags []string) (nodeversion.Release, string, bool) {
	var best nodeversion.Release
	var bestTag string
	for _, tag := range tags {
		m := releaseTagRE.FindStringSubmatch(tag)
		if m == nil {
			continue
		}
		// The pattern bounds each number to nine digits, which fit an int.
		r := nodeversion.Release{}
		r.Major, _ = strconv.Atoi(m[1])
		r.Minor, _ = strconv.Atoi(m[2])
		r.Patch, _ = strconv.Atoi(m[3])
		if bestTag == "" || less(best, r) {
			best, bestTag = r, tag
		}
	}
	return best, bestTag, bestTag != ""
}

func less(a, b nodeversion.Release) bool {
	if a.Major != b.Major {
		return a.Major < b.Major
	}
	if a.Minor != b.Minor {
		return a.Minor < b.Minor
	}
	return a.Patch < b.Patch
}

// runGit runs git in dir and returns its output without surrounding white
// space. --no-optional-locks keeps git status from rewriting the index,
// which would race with whatever else works in the repository.
func runGit(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir, "--no-optional-locks"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("computing the version: git is not installed: %w", err)
	}
	if err != nil {
		return "", fmt.Errorf("git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
