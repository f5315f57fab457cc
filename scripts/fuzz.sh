#!/usr/bin/env bash
# Fuzz every parser of the `wire` crate and the pipelines of both cards (the crate in
# fuzz/) with cargo-fuzz (libFuzzer + AddressSanitizer), each target for a bounded time,
# and fail on any crash.
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 30) each
#   FUZZ_SECONDS=300 scripts/fuzz.sh geneve_options vpc_outer
#
# Only stable Rust is installed here: cargo-fuzz needs nightly-only flags
# (-Zsanitizer=address, -Cpasses=sancov-module...), which RUSTC_BOOTSTRAP=1 unlocks on a
# stable compiler. Corpora are seeded from the captures in wire/tests/data (every packet,
# cut at every header boundary) and kept in fuzz/corpus/<target> between runs.
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <artifact>   (from fuzz/)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
seconds="${FUZZ_SECONDS:-30}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir"
if (($# > 0)); then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# Seeds: regenerated from the captures on every run (cheap), outside the corpora so that
# libFuzzer only writes new inputs to corpus/<target>.
seeds="$fuzz_dir/seeds"
rm -rf "$seeds"
(cd "$root" && cargo run --quiet -p wire --example fuzz_seeds -- wire/tests/data "$seeds")

echo "fuzz.sh: building the fuzz targets" >&2
cargo fuzz build

mkdir -p "$fuzz_dir/logs"
failed=()
summary=()
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$fuzz_dir/logs/$t.log"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  if cargo fuzz run "$t" "corpus/$t" "$seeds" -- \
      -max_total_time="$seconds" -print_final_stats=1 -max_len=4096 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
    failed+=("$t")
    tail -n 40 "$log" >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2)
  summary+=("$(printf '%-24s %-6s %12s runs %9s/s  cov %s' "$t" "$status" "${runs:-?}" "${rate:-?}" "${cov:-?}")")
done

echo
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "fuzz.sh: crashes in: ${failed[*]} (inputs in fuzz/artifacts/, logs in fuzz/logs/)" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, ${seconds}s each, no crash"
