package version

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	nodeversion "metropolis.dev/metropolis/version"
)

// repo is a temporary git repository that a test builds history in.
type repo struct {
	t   *testing.T
	dir string
	// made counts the commits made with commits, to name their files.
	made int
}

// isolateGit keeps the user's and the system's git configuration, and the
// repository of a git hook running the tests, out of the test and names the
// author, so that commits work anywhere.
func isolateGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is not installed (Debian package git): %v", err)
	}
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_COMMON_DIR"} {
		t.Setenv(k, "") // restores the variable after the test
		os.Unsetenv(k)
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL":   os.DevNull,
		"GIT_CONFIG_NOSYSTEM": "1",
		"GIT_AUTHOR_NAME":     "Test",
		"GIT_AUTHOR_EMAIL":    "test@example.com",
		"GIT_COMMITTER_NAME":  "Test",
		"GIT_COMMITTER_EMAIL": "test@example.com",
	} {
		t.Setenv(k, v)
	}
}

func newRepo(t *testing.T) *repo {
	t.Helper()
	isolateGit(t)
	r := &repo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *repo) git(args ...string) string {
	r.t.Helper()
	out, err := exec.Command("git", append([]string{"-C", r.dir}, args...)...).CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *repo) write(name, content string) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// commit commits a change to a tracked file named after the message.
func (r *repo) commit(msg string) {
	r.t.Helper()
	r.write(msg, msg)
	r.git("add", msg)
	r.git("commit", "-q", "-m", msg)
}

func (r *repo) commits(n int) {
	r.t.Helper()
	for range n {
		r.made++
		r.commit(fmt.Sprintf("commit-%d", r.made))
	}
}

func TestFromGit(t *testing.T) {
	for _, tc := range []struct {
		name    string
		history func(r *repo)
		release nodeversion.Release
		commits int
		dirty   bool
	}{
		{
			name:    "untagged single commit",
			history: func(r *repo) { r.commit("a") },
			release: firstRelease,
			commits: 1,
		},
		{
			name:    "untagged",
			history: func(r *repo) { r.commits(3) },
			release: firstRelease,
			commits: 3,
		},
		{
			name: "on a release tag",
			history: func(r *repo) {
				r.commits(3)
				r.git("tag", "v0.2.0")
			},
			release: nodeversion.Release{Minor: 2},
		},
		{
			name: "after a release tag",
			history: func(r *repo) {
				r.commits(3)
				r.git("tag", "v0.2.0")
				r.commits(2)
			},
			release: nodeversion.Release{Minor: 2},
			commits: 2,
		},
		{
			name: "annotated tag",
			history: func(r *repo) {
				r.commit("a")
				r.git("tag", "-a", "-m", "release", "v1.2.3")
				r.commit("b")
			},
			release: nodeversion.Release{Major: 1, Minor: 2, Patch: 3},
			commits: 1,
		},
		{
			name: "highest release by number, not by name or date",
			history: func(r *repo) {
				r.commit("a")
				r.git("tag", "v0.10.0")
				r.commit("b")
				r.git("tag", "v0.9.0")
				r.commit("c")
			},
			release: nodeversion.Release{Minor: 10},
			commits: 2,
		},
		{
			name: "tags that are not releases",
			history: func(r *repo) {
				r.commit("a")
				r.git("tag", "v0.3.0")
				r.commit("b")
				for _, tag := range []string{"v1.0.0-rc1", "v01.0.0", "v2.0", "vfoo", "1.0.0", "x-v1.0.0"} {
					r.git("tag", tag)
				}
				r.commit("c")
			},
			release: nodeversion.Release{Minor: 3},
			commits: 2,
		},
		{
			name: "tag outside the history of HEAD",
			history: func(r *repo) {
				r.commit("a")
				r.git("checkout", "-q", "-b", "other")
				r.commit("b")
				r.git("tag", "v5.0.0")
				r.git("checkout", "-q", "main")
				r.commit("c")
			},
			release: firstRelease,
			commits: 2,
		},
		{
			name: "merged branch counts all new commits",
			history: func(r *repo) {
				r.commit("a")
				r.git("tag", "v0.4.0")
				r.git("checkout", "-q", "-b", "side")
				r.commits(2)
				r.git("checkout", "-q", "main")
				r.commit("d")
				r.git("merge", "-q", "--no-edit", "side")
			},
			release: nodeversion.Release{Minor: 4},
			commits: 4,
		},
		{
			name: "modified tracked file",
			history: func(r *repo) {
				r.commit("a")
				r.write("a", "changed")
			},
			release: firstRelease,
			commits: 1,
			dirty:   true,
		},
		{
			name: "staged change on a release tag",
			history: func(r *repo) {
				r.commit("a")
				r.git("tag", "v0.2.0")
				r.write("new", "new")
				r.git("add", "new")
			},
			release: nodeversion.Release{Minor: 2},
			dirty:   true,
		},
		{
			name: "deleted tracked file",
			history: func(r *repo) {
				r.commit("a")
				if err := os.Remove(filepath.Join(r.dir, "a")); err != nil {
					r.t.Fatal(err)
				}
			},
			release: firstRelease,
			commits: 1,
			dirty:   true,
		},
		{
			name: "untracked file is not dirty",
			history: func(r *repo) {
				r.commit("a")
				r.write("untracked", "x")
			},
			release: firstRelease,
			commits: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			tc.history(r)
			got, err := FromGit(context.Background(), r.dir)
			if err != nil {
				t.Fatal(err)
			}
			want := Version{Release: tc.release, CommitsSinceRelease: tc.commits, Commit: r.git("rev-parse", "HEAD"), Dirty: tc.dirty}
			if got != want {
				t.Errorf("FromGit = %+v, want %+v", got, want)
			}
		})
	}
}

func TestFromGitErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string
		want  string
	}{
		{
			name:  "not a repository",
			setup: func(t *testing.T) string { isolateGit(t); return t.TempDir() },
			want:  "not a git repository",
		},
		{
			name:  "no commits",
			setup: func(t *testing.T) string { return newRepo(t).dir },
			want:  "no commit to build",
		},
		{
			name: "shallow clone",
			setup: func(t *testing.T) string {
				r := newRepo(t)
				r.commits(3)
				clone := filepath.Join(t.TempDir(), "clone")
				r.git("clone", "-q", "--depth=1", "file://"+r.dir, clone)
				return clone
			},
			want: "shallow clone",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := FromGit(context.Background(), tc.setup(t))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("FromGit: got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
