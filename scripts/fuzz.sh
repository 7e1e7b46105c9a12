#!/usr/bin/env bash
# Builds the fuzz targets in fuzz/ and runs each for a bounded time from the committed corpus;
# fails on a crash (a panic, or one input taking over FUZZ_TIMEOUT seconds). New inputs go to
# a scratch directory, never into the tree; a crashing input is kept in fuzz/artifacts/.
#
#   bash scripts/fuzz.sh                  every target, FUZZ_SECONDS (default 30) each
#   bash scripts/fuzz.sh gossip_frame     only the targets named
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh a longer run
#
# Needs the nightly toolchain (`cargo +nightly`); installs cargo-fuzz, pinned, when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds="${FUZZ_SECONDS:-30}"
timeout="${FUZZ_TIMEOUT:-10}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(enr_decode gossip_frame intro_frame api_filter)
# cargo fuzz's build flags, the same for the build and every run (or a run rebuilds): no
# sanitizer (the code under test forbids `unsafe`, so AddressSanitizer adds cost and no
# findings) and 16 codegen units (cargo fuzz's default of 1 makes the build far slower).
build=(--sanitizer none --codegen-units 16)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: needs the nightly toolchain: rustup toolchain install nightly" >&2
  exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

cd fuzz
# cargo fuzz has no --locked: check fuzz/Cargo.lock up front, so the build uses it unchanged.
cargo +nightly fetch --locked --quiet
start=$SECONDS
cargo +nightly fuzz build "${build[@]}"
echo "fuzz: targets built in $((SECONDS - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
# A line of libFuzzer's final stats (-print_final_stats=1) from a run's log.
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n 1; }
summary=()
failed=()
for target in "${targets[@]}"; do
  mkdir "$scratch/$target"
  log="$scratch/$target.log"
  echo "fuzz: $target for $seconds s, from corpus/$target"
  # The scratch directory comes first: libFuzzer writes new inputs into the first one.
  if cargo +nightly fuzz run "${build[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -timeout="$timeout" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$target")
    # The whole log but libFuzzer's progress lines: the panic, the input, how to reproduce.
    grep -v -E '^#[0-9]+|^[[:space:]]+NEW_FUNC' "$log" >&2 || true
  fi
  ran="$(sed -n -E 's/^Done [0-9]+ runs in ([0-9]+) second.*/\1/p' "$log" | tail -n 1)"
  summary+=("$(printf '%-13s %-6s %10s executions in %3s s (%s/s), %s new inputs' \
    "$target" "$result" "$(final_stat "$log" number_of_executed_units)" "${ran:-?}" \
    "$(final_stat "$log" average_exec_per_sec)" "$(find "$scratch/$target" -type f | wc -l)")")
done

echo "fuzz: $seconds s a target, from the committed corpus:"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: ${failed[*]} crashed: the input is in fuzz/artifacts/<target>/; reproduce with" >&2
  echo "  cd fuzz && cargo +nightly fuzz run ${build[*]} <target> artifacts/<target>/<file>" >&2
  exit 1
fi
