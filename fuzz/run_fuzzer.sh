#!/usr/bin/env bash
# Run one libFuzzer target as a test (fuzz/meson.build):
#   run_fuzzer.sh FUZZER CORPUS REGRESSIONS ARTIFACTS SECONDS [DICT]
# 1. replay every input of REGRESSIONS and CORPUS once;
# 2. fuzz for SECONDS (FUZZ_SECONDS overrides it; 0 skips this step),
#    starting from a temporary copy of CORPUS, so the committed corpus is
#    never modified. A crashing input is saved under ARTIFACTS.
# Exits non-zero on any crash, sanitizer report, timeout or leak.
set -euo pipefail

fuzzer=$1 corpus=$2 regressions=$3 artifacts=$4 seconds=${FUZZ_SECONDS:-$5} dict=${6:-}
name=$(basename "$fuzzer")

# Undefined behaviour is a failure, not a warning (clang's UBSan recovers by
# default); keep any settings the caller made.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

opts=(-timeout=10 -rss_limit_mb=2048)
if [ -n "$dict" ]; then opts+=("-dict=$dict"); fi

inputs=()
for dir in "$regressions" "$corpus"; do
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do inputs+=("$f"); done < <(
    find "$dir" -type f ! -name '.*' ! -name 'README*' -print0 | sort -z)
done
echo "== $name: replaying ${#inputs[@]} inputs (regressions and corpus)"
if [ "${#inputs[@]}" -gt 0 ]; then
  # Individual files: each runs once; a crash names the file. The log is
  # shown only on failure (it lists every file).
  log=$(mktemp)
  set +e
  "$fuzzer" "${opts[@]}" "${inputs[@]}" >"$log" 2>&1
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then
    cat "$log"
    rm -f "$log"
    echo "== $name: FAILED replaying an input (exit $status): the last 'Running:' line names it"
    exit 1
  fi
  rm -f "$log"
  echo "== $name: all ${#inputs[@]} inputs passed"
fi

if [ "$seconds" -le 0 ]; then exit 0; fi
work=$(mktemp -d "${TMPDIR:-/tmp}/$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/corpus" "$artifacts"
[ -d "$corpus" ] && cp -R "$corpus/." "$work/corpus/"
echo "== $name: fuzzing for $seconds s"
set +e
"$fuzzer" "${opts[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$work/corpus"
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "== $name: FAILED (exit $status). The input is in $artifacts/; reproduce with"
  echo "   $fuzzer $artifacts/<file>"
  echo "   and once fixed, add it to $regressions/ named after what it found."
  exit 1
fi
