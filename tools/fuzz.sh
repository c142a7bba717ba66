#!/usr/bin/env bash
# tools/fuzz.sh — fuzzes every parser target of tests/fuzz/ with ASan+UBSan and prints, per target, how many
# inputs ran and what was found.
#
#   tools/fuzz.sh [--seconds S] [--driver] [target...]      (default: 60 s per target, all targets)
#
# With clang++ that has libFuzzer (-fsanitize=fuzzer; Debian's clang does), builds libfuzzer_<target> in
# build-fuzz (clang, -DSEEKGRAD_FUZZ=ON, ASan+UBSan, -O2) and runs each for S seconds from the seed corpus.
# Otherwise (or with --driver) builds fuzz_<target> in build-asan (the `sanitize` preset, gcc) and runs the
# plain driver's deterministic mutator (tests/fuzz/driver.cpp) for S seconds. The seed corpus is written by
# fuzz_make_seeds into <build>/fuzz_corpus/; findings (the crashing inputs) go to <build>/fuzz_findings/<target>/.
# A finding: minimise it, fix the parser, and add the input to tests/fixtures/fuzz_regressions/<target>/ —
# the normal suite (ctest -L fuzz) then runs it on every build.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
mode=auto
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --driver) mode=driver; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -eq 0 ] && targets=(safetensors json hf_config yaml_config shards tokenizer checkpoint)
jobs=$(nproc 2>/dev/null || echo 2)

if [ "$mode" = auto ]; then
  mode=driver
  if command -v clang++ >/dev/null 2>&1 &&
     echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
       clang++ -fsanitize=fuzzer -x c++ - -o /tmp/seekgrad_fuzz_probe.$$ >/dev/null 2>&1; then
    mode=libfuzzer
  fi
  rm -f /tmp/seekgrad_fuzz_probe.$$
fi

launcher=()
command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ "$mode" = libfuzzer ]; then
  build=build-fuzz
  cmake -S . -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release \
    -DSEEKGRAD_SANITIZE=ON -DSEEKGRAD_FUZZ=ON -DSEEKGRAD_CUDA=OFF "${launcher[@]}" >/dev/null
  bins=(fuzz_make_seeds); for t in "${targets[@]}"; do bins+=("libfuzzer_$t"); done
else
  build=build-asan
  cmake --preset sanitize "${launcher[@]}" >/dev/null
  bins=(fuzz_make_seeds); for t in "${targets[@]}"; do bins+=("fuzz_$t"); done
fi
nice cmake --build "$build" -j "$jobs" --target "${bins[@]}"
"$build/bin/fuzz_make_seeds" . "$build/fuzz_corpus"

export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:allocator_may_return_null=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}"
summary=()
status=0
for t in "${targets[@]}"; do
  findings="$build/fuzz_findings/$t"
  mkdir -p "$findings"
  log="$build/fuzz_findings/$t.log"
  rc=0
  start=$(date +%s)
  if [ "$mode" = libfuzzer ]; then
    # A working corpus of its own (libFuzzer adds the inputs that reach new code); the seeds stay as written.
    work="$build/fuzz_work/$t"; mkdir -p "$work"
    "$build/bin/libfuzzer_$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$findings/" -print_final_stats=1 "$work" "$build/fuzz_corpus/$t" >"$log" 2>&1 || rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  else
    "$build/bin/fuzz_$t" --mutate 1000000000 --seed "$(date +%s)" --max-seconds "$seconds" --max-len 65536 \
      --crash-dir "$findings" "$build/fuzz_corpus/$t" >"$log" 2>&1 || rc=$?
    runs=$(grep -o '[0-9]* executions' "$log" | grep -o '^[0-9]*' || true)
  fi
  n_found=$(find "$findings" -type f | wc -l)
  result="no findings"
  if [ "$rc" -ne 0 ] || [ "$n_found" -gt 0 ]; then
    result="FINDING (exit $rc): $(find "$findings" -type f | head -3 | tr '\n' ' ')— see $log"
    status=1
  fi
  summary+=("$(printf '%-12s %10s executions in %4d s  %s' "$t" "${runs:-?}" "$(( $(date +%s) - start ))" "$result")")
done
echo "tools/fuzz.sh ($mode, $build):"
printf '  %s\n' "${summary[@]}"
exit $status
