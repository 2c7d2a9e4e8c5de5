# Entry points of the Metropolis build. Targets stay thin: what they do lives
# in Go programs under build/, and each target installs what it needs itself.

# The Go command to use, installed first on machines without a recent one.
GO := $(shell build/ensure-go.sh)
ifeq ($(GO),)
$(error no usable Go toolchain; see build/ensure-go.sh's message above)
endif
export PATH := $(dir $(GO)):$(PATH)

# Debian packages the checks and tests need: protoc for the generated-code
# check, and the real tools the image writers are verified against.
TEST_PACKAGES := protobuf-compiler libprotobuf-dev cpio zstd erofs-utils cryptsetup-bin \
	qemu-system-x86 qemu-utils ovmf swtpm binutils sbsigntool efitools git \
	gdisk fdisk dosfstools mtools xz-utils

.PHONY: all test check generate bench prereqs-test launch-cluster image bench-boot bench-curator

all: test

prereqs-test:
	go run ./build/prereqs $(TEST_PACKAGES)

## generate: regenerate the committed protobuf and gRPC code.
generate: prereqs-test
	go run ./build/protogen

## check: formatting, import groups, go.mod, vet, staticcheck, stale generated code.
check: prereqs-test
	go run ./build/check

## test: every check, then every test; osbase runs under the race detector.
## VM tests run under TCG without /dev/kvm; METROPOLIS_TEST_TIMEOUT_SCALE
## stretches their timeouts on slow machines.
test: check
	go test -race -count=1 ./osbase/...
	go test -count=1 ./build/... ./metropolis/...

## image: the node disk image, out/node.img (see build/mkimage).
image:
	go run ./build/mkimage -out out/node.img

## bench-boot: image build time, UKI and system size, boot time to the banner.
bench-boot: prereqs-test
	go run ./build/benchboot

## bench-curator: the control plane under 100, 1,000 and 5,000 simulated nodes,
## with 1 and 3 members (see metropolis/test/benchcurator); about 12 minutes.
bench-curator:
	go test -c -o out/benchcurator.test ./metropolis/test/benchcurator
	out/benchcurator.test -benchmark -nodes 100,1000,5000 -members 1,3 -window 30s

## bench: the Go benchmarks, on one core so figures compare across machines.
bench:
	go test -run='^$$' -bench=. -benchmem -cpu=1 ./osbase/...

launch-cluster:
	@echo "launch-cluster: not built yet: nodes cannot form a cluster so far (see README.md); make image builds a bootable node image" >&2
	@exit 1
