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

.PHONY: all test e2e check generate bench prereqs-test launch-cluster launch image bench-boot bench-curator bench-launch bench-mesh

all: test

prereqs-test:
	go run ./build/prereqs $(TEST_PACKAGES)

## generate: regenerate the committed protobuf and gRPC code.
generate: prereqs-test
	go run ./build/protogen

## check: formatting, import groups, go.mod, vet, staticcheck, stale generated code.
check: prereqs-test
	go run ./build/check

# The end-to-end suites (metropolis/test/e2e) each launch a cluster of VMs;
# they run one at a time, after the other tests, so that two clusters never
# share the CPUs. make test runs these; make e2e runs them all.
E2E_TEST_SUITES := ./metropolis/test/e2e/core/... ./metropolis/test/e2e/metroctl/... ./metropolis/test/e2e/clusternet/...
E2E_SUITES := ./metropolis/test/e2e/...

## test: every check, then every test; osbase runs under the race detector.
## VM tests run under TCG without /dev/kvm; METROPOLIS_TEST_TIMEOUT_SCALE
## stretches their timeouts on slow machines.
test: check
	go test -race -count=1 ./osbase/...
	go test -count=1 -timeout 30m ./build/... $$(go list ./metropolis/... | grep -v /metropolis/test/e2e/)
	go test -count=1 -p 1 -timeout 60m $(E2E_TEST_SUITES)

## e2e: every end-to-end suite, one after the other.
e2e: prereqs-test
	go test -count=1 -p 1 -timeout 120m -v $(E2E_SUITES)

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

## bench-launch: how fast test clusters come up: each node's VM start to UP
## and HEALTHY, the whole launch, a node's reboot (medians of 3 launches).
bench-launch: prereqs-test
	go run ./metropolis/test/benchlaunch -runs 3 -nodes 3

## bench-mesh: the cluster network mesh: time from a node's UP to a full mesh,
## throughput between two nodes through the mesh and over the plain network.
bench-mesh: prereqs-test
	go run ./metropolis/test/benchmesh -nodes 3 -rounds 3 -bytes 32MiB

## bench: the Go benchmarks, on one core so figures compare across machines.
bench:
	go test -run='^$$' -bench=. -benchmem -cpu=1 ./osbase/...

## launch-cluster: builds the image and metroctl, starts a test cluster of
## three nodes and prints how to reach it; Ctrl-C stops it. Flags go in
## LAUNCH_FLAGS, for example LAUNCH_FLAGS="-num-nodes 5 -storage-security
## needs-encryption" (see -help).
## (Built, then run: go run would turn the Ctrl-C that ends it into a failure.)
launch-cluster: prereqs-test
	go build -o out/launch-cluster ./metropolis/test/launch/cli/launch-cluster
	out/launch-cluster $(LAUNCH_FLAGS)

## launch: one node bootstrapping a cluster, its console in the terminal.
launch: prereqs-test
	go build -o out/launch ./metropolis/test/launch/cli/launch
	out/launch $(LAUNCH_FLAGS)
