SHELL := /bin/bash
# vpcemu: the two commands for a fresh machine are `make demo` and `make test`.
# Every target that builds first runs scripts/setup.sh (idempotent: it installs only
# what is missing).

CARGO    ?= cargo
FUZZ_SMOKE_SECONDS ?= 5
TARGET   := $(or $(CARGO_TARGET_DIR),target)
RELEASE  := $(TARGET)/release

.PHONY: setup build demo lab test bench fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# The story of the AWS VPC data plane on a built-in world, narrated and checked
# (exit status non-zero if any step misbehaves).
demo: build
	$(RELEASE)/vpcemu demo

# The story's world as real Linux hosts (as root): every instance in a network namespace
# of its own (red-1, yellow-1, green-1) and the internet host behind blackfoot-1
# (blackfoot-1-internet); prints the commands to try; Ctrl-C ends it and removes them.
lab: build
	@printf '[dataplane]\nlcores = "0-1"\nmemory_mb = 512\nhugepages = "auto"\n\n' | \
	  cat - examples/story-world.toml > $(TARGET)/lab-world.toml
	$(RELEASE)/vpcemu lab $(TARGET)/lab-world.toml --control $(TARGET)/lab.sock --alerts $(TARGET)/lab-alerts.jsonl

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
