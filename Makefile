SHELL := /bin/bash
# vpcemu: the two commands for a fresh machine are `make demo` and `make test`.
# Every target that builds first runs scripts/setup.sh (idempotent: it installs only
# what is missing).

CARGO    ?= cargo
TARGET   := $(or $(CARGO_TARGET_DIR),target)
RELEASE  := $(TARGET)/release
DEMO_OUT := $(TARGET)/demo

.PHONY: setup build demo test bench fuzz clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace

# Until the seed-story demo exists: forward a small built-in capture through
# `vpcemu passthrough` (net_pcap -> net_pcap) and show what came out.
demo: build
	@mkdir -p $(DEMO_OUT)
	$(RELEASE)/vpcemu passthrough \
	  --vdev net_pcap0,rx_pcap=examples/passthrough.pcap \
	  --vdev net_pcap1,tx_pcap=$(DEMO_OUT)/passthrough-out.pcap \
	  --until-idle 200 --memory-mb 256
	@echo "--- what came out ($(DEMO_OUT)/passthrough-out.pcap), read by tshark:"
	@tshark -n -r $(DEMO_OUT)/passthrough-out.pcap 2>/dev/null

test: setup
	$(CARGO) test --workspace --no-fail-fast

bench: build
	$(RELEASE)/vpcemu-bench --json $(TARGET)/bench.json --work $(TARGET)/bench-work

fuzz:
	bash scripts/fuzz.sh

clean:
	$(CARGO) clean
