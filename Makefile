SHELL := /bin/bash
# vpcemu: the two commands for a fresh machine are `make demo` and `make test`.
# Every target that builds first runs scripts/setup.sh (idempotent: it installs only
# what is missing).

CARGO    ?= cargo
FUZZ_SMOKE_SECONDS ?= 5
TARGET   := $(or $(CARGO_TARGET_DIR),target)
RELEASE  := $(TARGET)/release

.PHONY: setup build demo test bench fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The story of the AWS VPC data plane on a built-in world, narrated and checked
# (exit status non-zero if any step misbehaves).
demo: build
	$(RELEASE)/vpcemu demo

# Every test, then every fuzz target for a few seconds (make fuzz runs them longer).
test: setup
	$(CARGO) test --workspace --no-fail-fast
	FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS) bash scripts/fuzz.sh

# As root, give DPDK 1200 hugepages (2.4 GB) first: both vpcemu and testpmd use them.
# The mapping tables live on the Rust heap: glibc's hugetlb tunable puts it on transparent
# huge pages (madvise), which saves a TLB miss on nearly every lookup of a large table.
bench: export GLIBC_TUNABLES = glibc.malloc.hugetlb=1
bench: build
	@if [ "$$(id -u)" = 0 ] && [ "$$(cat /proc/sys/vm/nr_hugepages)" -lt 1200 ]; then \
	  echo 1200 > /proc/sys/vm/nr_hugepages || true; fi
	$(RELEASE)/vpcemu-bench --json $(TARGET)/bench.json --work $(TARGET)/bench-work

fuzz:
	bash scripts/fuzz.sh

clean:
	$(CARGO) clean
