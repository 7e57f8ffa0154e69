#!/usr/bin/env bash
# Runs every fuzz target for a bounded time and prints what each reached.
#
#   fuzz/run.sh SECONDS [TARGET...]     (default: every target, SECONDS each, one after another)
#
# Builds the targets (cargo-fuzz on a stable toolchain through RUSTC_BOOTSTRAP=1), seeds the
# corpora (the codec targets from the golden vectors, the others from fuzz/seeds/), runs each
# target with libFuzzer's -max_total_time, and prints one line per target: executions,
# seconds, executions per second, coverage, corpus size, crashes. A crash leaves its input in
# fuzz/artifacts/<target>/ and is copied to fuzz/regressions/<target>/, where
# tests/tests/reliability_fuzz_regressions.rs runs it under `cargo test` once committed
# (after the bug is fixed). The summary also goes to fuzz/last-run.txt.
#
# Environment: FUZZ_RSS_MB (libFuzzer's memory limit, default 2048); FUZZ_CLEAN=1 removes
# fuzz/target afterwards (several GB).
set -euo pipefail
cd "$(dirname "$0")"

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS [TARGET...]" >&2
  exit 2
fi
secs=$1
shift
all=(decode_message decode_attribute round_trip fsm_sequence l2_frame manifest)
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")

command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 1
}
export RUSTC_BOOTSTRAP=1

echo "== building ${targets[*]}"
for t in "${targets[@]}"; do
  cargo fuzz build "$t" >/dev/null
done

echo "== seeding"
./seed-corpus.sh >/dev/null
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  if [ -d "seeds/$t" ]; then cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
  if [ -d "regressions/$t" ]; then cp -n regressions/"$t"/* "corpus/$t/" 2>/dev/null || true; fi
done

mkdir -p logs
status=0
summary=()
for t in "${targets[@]}"; do
  echo "== $t for ${secs}s"
  log="logs/$t.log"
  mkdir -p "artifacts/$t"
  before=$(ls "artifacts/$t" | wc -l)
  start=$(date +%s)
  set +e
  cargo fuzz run "$t" "corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  took=$(($(date +%s) - start))
  runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  corpus=$(ls "corpus/$t" | wc -l)
  after=$(ls "artifacts/$t" | wc -l)
  crashes=$((after - before))
  if [ $crashes -gt 0 ] || [ $rc -ne 0 ]; then
    status=1
    mkdir -p "regressions/$t"
    for f in "artifacts/$t"/*; do cp -n "$f" "regressions/$t/" 2>/dev/null || true; done
    echo "   $t FAILED (exit $rc): see $log and regressions/$t/"
  fi
  # libFuzzer's own count of seconds when it finished normally; else the wall time since the
  # run began (a crash ends a run early; that includes any rebuild cargo-fuzz did first).
  done_secs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | awk '{s+=$5} END {print s+0}')
  [ "$done_secs" -gt 0 ] && took=$done_secs
  rate=$((runs / (took > 0 ? took : 1)))
  line=$(printf '%-17s %12s runs %6ss %9s/s  cov %-6s corpus %-6s crashes %s' \
    "$t" "$runs" "$took" "$rate" "${cov:-?}" "$corpus" "$crashes")
  echo "   $line"
  summary+=("$line")
done

{
  echo "# fuzz/run.sh $secs, $(date -u +%Y-%m-%dT%H:%MZ), $(rustc --version), cargo-fuzz $(cargo fuzz --version 2>/dev/null | awk '{print $2}')"
  printf '%s\n' "${summary[@]}"
} | tee last-run.txt

if [ "${FUZZ_CLEAN:-0}" = 1 ]; then rm -rf target; fi
exit $status
