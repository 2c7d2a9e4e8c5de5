#!/bin/sh
# Prints the path of a Go command that can build this repository, installing
# one first when the machine has none that is recent enough.
#
# This is the only shell script of the build: every other step is a Go program,
# which needs Go to exist first. Debian 12 ships Go 1.19, too old for go.mod, so
# Debian's Go is used only to download the pinned release toolchain from the Go
# module proxy, where the Go project publishes it as the module
# golang.org/toolchain (the same source GOTOOLCHAIN=auto uses). go.sum's
# checksum database verifies the download.
set -eu

cd "$(dirname "$0")/.."
toolchain=$(sed -n 's/^toolchain go//p' go.mod)
minimum=$(sed -n 's/^go //p' go.mod)
install_dir=${METROPOLIS_GO_INSTALL_DIR:-/usr/local/go}

# version_at_least A B succeeds when version A >= version B.
version_at_least() {
	[ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

for candidate in "$(command -v go 2>/dev/null || true)" "$install_dir/bin/go"; do
	[ -x "$candidate" ] || continue
	have=$(GOTOOLCHAIN=local "$candidate" env GOVERSION 2>/dev/null | sed 's/^go//') || continue
	if version_at_least "$have" "$minimum"; then
		echo "$candidate"
		exit 0
	fi
done

if [ -e "$install_dir" ]; then
	echo "ensure-go: $install_dir exists but holds no Go >= $minimum; move it away and retry" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "ensure-go: no Go >= $minimum found; run as root to install go$toolchain to $install_dir" >&2
	exit 1
fi

echo "ensure-go: installing go$toolchain to $install_dir" >&2
if ! [ -x /usr/lib/go/bin/go ]; then
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go ca-certificates >&2
fi
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
arch=$(dpkg --print-architecture)
module="golang.org/toolchain@v0.0.1-go$toolchain.linux-$arch"
(cd "$work" && GOPATH="$work/gopath" GO111MODULE=on GOFLAGS=-modcacherw \
	/usr/lib/go/bin/go mod download "$module" >&2)
cp -r "$work/gopath/pkg/mod/$module" "$install_dir"
# Module archives carry no file modes; restore the executables' bits.
chmod +x "$install_dir"/bin/* "$install_dir"/pkg/tool/*/*
echo "$install_dir/bin/go"
