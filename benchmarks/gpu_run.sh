#!/usr/bin/env bash
# One device-machine session: build for sm_90, CUDA tests, compute-sanitizer, CUDA benchmark.
# Usage (on the GPU machine, repo root):  bash benchmarks/gpu_run.sh [tests|sanitize|bench|cpp|all] ...
# Logs go to $OUT (or ./gpu_out).
set -uo pipefail
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 TORCH_CUDA_ARCH_LIST=9.0 MAX_JOBS=${MAX_JOBS:-16}
steps=${*:-all}
log() { echo "== $(date +%T) $*"; }
{
  log "device"; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  log "build"
  t0=$(date +%s)
  python3 setup.py -q build_ext --inplace > "$OUT/build.log" 2>&1 || { tail -50 "$OUT/build.log"; exit 1; }
  echo "build: $(( $(date +%s) - t0 )) s"
  for so in lossext/lib/liblossext.so lossext/_C*.so; do
    echo "$so: $(readelf -d "$so" | grep -o "NEEDED.*" | tr '\n' ' ')"
  done
} 2>&1 | tee "$OUT/run.log"
[ "${PIPESTATUS[0]}" = 0 ] || exit 1
for step in $steps; do
  case $step in
    tests|all)
      log "CUDA tests" | tee -a "$OUT/run.log"
      python3 -m pytest tests -q -m cuda -p no:cacheprovider 2>&1 | tail -30 | tee -a "$OUT/run.log" ;;&
    sanitize|all)
      log "compute-sanitizer" | tee -a "$OUT/run.log"
      for tool in ${SAN_TOOLS:-memcheck racecheck initcheck}; do
        compute-sanitizer --tool $tool --error-exitcode 9 python3 benchmarks/sanitize_cases.py > "$OUT/sanitize_$tool.log" 2>&1
        echo "$tool: exit $? ($(grep -c 'ERROR SUMMARY: 0 errors' "$OUT/sanitize_$tool.log") clean summaries)" | tee -a "$OUT/run.log"
        grep -m5 -E "ERROR SUMMARY|Invalid|Race|Uninitialized" "$OUT/sanitize_$tool.log" | tee -a "$OUT/run.log"
      done ;;&
    cpp|all)  # the C++ API from a libtorch program linking the CUDA build of liblossext.so
      log "C++ example" | tee -a "$OUT/run.log"
      python3 tools/cpp_example.py --jobs "$MAX_JOBS" 2>&1 | tail -5 | tee -a "$OUT/run.log" ;;&
    bench|all)
      log "bench" | tee -a "$OUT/run.log"
      python3 -m lossext.bench --device cuda --out "$OUT/bench_cuda.md" ${BENCH_ARGS:-} 2>&1 | grep -v "it/s\]" | tail -40 | tee -a "$OUT/run.log" ;;
  esac
done
