#!/usr/bin/env bash
# Installs, idempotently and without questions, what vpcemu's build, tests and
# benchmarks need on Debian 12. Safe to run again: it only installs what is missing.
set -euo pipefail

PKGS=(
  dpdk dpdk-dev libdpdk-dev      # DPDK 22.11: EAL, PMDs (net_pcap, net_tap, net_null, net_ring), testpmd
  libipsec-mb-dev                # intel-ipsec-mb: ESP's AES-GCM (--esp-cipher aesni-gcm) calls it directly
  libpcap-dev                    # net_pcap
  libclang-dev clang pkg-config  # bindgen
  build-essential                # the C shim
  tshark                         # checking our output with dissectors nobody here wrote
  python3-scapy                  # crafting test traffic (Debian's python: /usr/bin/python3)
  prometheus                     # promtool: tests check vpcemu run --metrics with it
  iproute2 iputils-ping procps   # network namespaces (and their sysctls) for net_tap tests and `vpcemu lab`
  iperf3 curl                    # `vpcemu lab`: throughput between lab hosts (tests/lab.rs), HTTP through an Elastic IP
  etcd-server                    # the shared mapping service (etcd 3.4); tests start their own
  protobuf-compiler libprotobuf-dev  # protoc and its well-known .proto files, for the etcd-client crate
  jq
  linux-perf                     # perf: `vpcemu-bench --profile` (cycles per packet by shared object)
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup.sh: missing packages: ${missing[*]}; run as root (or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup.sh: installed ${missing[*]}"
fi

# Optional: Open vSwitch with DPDK, the peer that `vpcemu-bench ovs-geneve-egress` (run only
# when named) measures. Installed where the package exists; without it setup still succeeds.
# We run our own ovs-vswitchd, never the system's service: stopped right after a fresh install.
OVS_PKG=openvswitch-switch-dpdk
if ! dpkg-query -W -f='${Status}' "$OVS_PKG" 2>/dev/null | grep -q "install ok installed"; then
  if [[ $(id -u) -eq 0 ]] && apt-cache show "$OVS_PKG" >/dev/null 2>&1 \
     && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$OVS_PKG" >/dev/null 2>&1; then
    echo "setup.sh: installed $OVS_PKG"
    if command -v systemctl >/dev/null && systemctl is-active -q openvswitch-switch 2>/dev/null; then
      systemctl stop openvswitch-switch || true
    fi
  else
    echo "setup.sh: note: $OVS_PKG not installed (only vpcemu-bench ovs-geneve-egress needs it)" >&2
  fi
fi

if ! pkg-config --atleast-version=22.11 libdpdk; then
  echo "setup.sh: libdpdk >= 22.11 not found by pkg-config after install" >&2
  exit 1
fi

# vpcemu run --pdump (tests/pdump.rs): dpdk-dumpcap, a secondary process, maps the run's
# hugepage files, so a hugetlbfs must be mounted and hugepages reserved (256 at least).
if [[ $(id -u) -eq 0 ]]; then
  if ! grep -q " hugetlbfs " /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages || echo "setup.sh: could not mount hugetlbfs at /dev/hugepages (vpcemu run --pdump needs one)" >&2
  fi
  if (( $(cat /proc/sys/vm/nr_hugepages) < 256 )); then
    echo 256 > /proc/sys/vm/nr_hugepages || echo "setup.sh: could not reserve hugepages (vpcemu run --pdump needs them)" >&2
  fi
fi
