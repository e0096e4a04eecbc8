#!/usr/bin/env bash
# GPU check of visual-summaries: build the checkout, run the GPU tests and the stage-1 GPU benchmark.
#
# Needs: a machine with an NVIDIA GPU and no network, where `python3` (or $PYTHON) has torch with CUDA,
# and CMake, pybind11, scikit-build-core, pip and a C++ compiler (nvcc for later CUDA steps); the test
# steps also use pytest, and vsum's runtime dependencies (numpy, pillow, tqdm, scikit-learn, ...) must
# be importable (nothing is downloaded: the package is installed with --no-deps).
#
# Call, from anywhere (the device tool runs commands in the repository root, $OUT being its output folder):
#     bash benchmarks/gpu_check.sh "$OUT"
# Where the copy of the checkout has no git metadata, name the commit:  VSUM_COMMIT=<sha> bash ... "$OUT"
#
# Steps, in order (each a function step_<name> below, run by run_step with its own time limit):
#   machine          nvidia-smi, the commit (git rev-parse HEAD), python / torch / CUDA / nvcc / cmake versions
#   build            wheel built from the checkout and installed (as .ci/run, but offline: --no-build-isolation)
#   gpu_tests        python -m pytest -m gpu (exit 5, no test marked gpu yet, counts as passed)
#   bench_masks_gpu  benchmarks/bench_masks_gpu.py --device cuda --out OUTDIR (masks_gpu.json and .md)
# Each step's output goes to OUTDIR/<step>.log; a failed or timed-out step is recorded and the next
# step runs (a step whose prerequisite failed is recorded as failed without running).  One line per
# step is printed and appended to OUTDIR/summary.txt; the exit status is 1 when any step failed.
# The whole run stays under 8 minutes: every step's limit is cut to what is left of
# VSUM_GPU_CHECK_BUDGET_S (default 470 s).
#
# Options (environment):
#   PYTHON                     interpreter (default: python3)
#   VSUM_GPU_CHECK_STEPS       comma-separated steps to run (default: all)
#   VSUM_GPU_CHECK_BUDGET_S    total seconds for all steps (default: 470)
#   VSUM_GPU_CHECK_BENCH_ARGS  extra arguments of bench_masks_gpu.py (e.g. "--models resnet50 --images 20")
#
# Adding a step: write a function step_<name> (it runs in `bash -euo pipefail` from the repository
# root; $OUTDIR, $PYTHON and $STEP_NOTE are set; what it writes to $STEP_NOTE is shown on its summary
# line) and a run_step line at the bottom.  The device tool brings back at most 8 files from $OUT:
# today's run writes 7 (summary.txt, four logs, masks_gpu.json, masks_gpu.md).
set -euo pipefail

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  echo "usage: bash benchmarks/gpu_check.sh OUTDIR" >&2
  exit 2
fi
mkdir -p "$1"
OUTDIR=$(cd "$1" && pwd)
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
PYTHON=${PYTHON:-python3}
BUDGET_S=${VSUM_GPU_CHECK_BUDGET_S:-470}
SELECTED=${VSUM_GPU_CHECK_STEPS:-all}
BENCH_ARGS=${VSUM_GPU_CHECK_BENCH_ARGS:-}
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/vsum-gpu-check.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
COMMIT=$(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "${VSUM_COMMIT:-unknown}")
export OUTDIR REPO PYTHON BENCH_ARGS SCRATCH COMMIT
export VSUM_COMMIT=${VSUM_COMMIT:-$COMMIT}
export PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

STARTED=$SECONDS
FAILED=()
declare -A STATUS=()

# --------------------------------------------------------------------------- steps

step_machine() {
  # Records everything it can, then fails when the GPU is not usable (no nvidia-smi, or torch sees no CUDA).
  local problems=()
  echo "commit: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo "unknown (no git metadata; VSUM_COMMIT=${VSUM_COMMIT})")"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "--- nvidia-smi"
  nvidia-smi || problems+=("nvidia-smi failed")
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
  echo "--- tools"
  nvcc --version || echo "nvcc: not found"
  cmake --version || echo "cmake: not found"
  echo "--- python"
  "$PYTHON" - <<'EOF' || problems+=("torch sees no CUDA device")
import platform, sys
import torch
print("python", platform.python_version(), sys.executable)
print("torch", torch.__version__, "CUDA", torch.version.cuda, "cuDNN", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available(), "devices:", torch.cuda.device_count())
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device")
print("device 0:", torch.cuda.get_device_name(0), torch.cuda.get_device_capability(0))
EOF
  local gpu
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  local IFS=,
  echo "${gpu:-no GPU}, commit ${COMMIT:0:12}${problems[*]:+; ${problems[*]}}" >"$STEP_NOTE"
  [ "${#problems[@]}" -eq 0 ]
}

step_build() {
  # .ci/run: `pip wheel --no-deps --wheel-dir dist .`, install the wheel, import vsum._core.  Offline here:
  # the build backend comes from this environment (--no-build-isolation) and nothing is fetched (--no-index).
  local wheel_dir="$SCRATCH/dist"
  export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
  "$PYTHON" -m pip wheel -v --no-build-isolation --no-deps --no-index --wheel-dir "$wheel_dir" .
  local wheel
  wheel=$(ls "$wheel_dir"/visual_summaries-*.whl)
  "$PYTHON" -m pip install --no-deps --no-index --force-reinstall "$wheel"
  (cd / && "$PYTHON" -c "import vsum._core, vsum; print('vsum', vsum.__version__, 'compiled core:', vsum._core.__file__)")
  basename "$wheel" >"$STEP_NOTE"
}

step_gpu_tests() {
  local rc=0
  "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider tests || rc=$?
  if [ "$rc" -eq 5 ]; then
    echo "no GPU tests yet (pytest exit 5: no test is marked gpu)" | tee "$STEP_NOTE"
    return 0
  fi
  return "$rc"
}

step_bench_masks_gpu() {
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of words
  "$PYTHON" benchmarks/bench_masks_gpu.py --device cuda --out "$OUTDIR" $BENCH_ARGS
  "$PYTHON" - "$OUTDIR/masks_gpu.json" >"$STEP_NOTE" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["results"]
print("; ".join(f"{r['model']} {r['image_iterations_per_s']} image-it/s" if r["status"] == "ok"
                else f"{r['model']} {r['status']}" for r in rows))
EOF
}

# --------------------------------------------------------------------------- runner

# record NAME STATUS SECONDS DETAIL: one summary line (stdout and summary.txt)
record() {
  STATUS[$1]=$2
  if [ "$2" != ok ]; then FAILED+=("$1"); fi
  printf '%-5s %-16s %4ss  %s\n' "$2" "$1" "$3" "$4" | tee -a "$OUTDIR/summary.txt"
}

# run_step NAME MAX_SECONDS [NEEDS]: run step_NAME with its log in OUTDIR/NAME.log, limited to
# MAX_SECONDS and to what is left of the budget; NEEDS names a step that must not have failed.
run_step() {
  local name=$1 max_s=$2 needs=${3:-}
  if [ "$SELECTED" != all ] && [[ ",$SELECTED," != *",$name,"* ]]; then
    return 0
  fi
  if [ -n "$needs" ] && [ -n "${STATUS[$needs]:-}" ] && [ "${STATUS[$needs]}" != ok ]; then
    record "$name" FAIL 0 "not run: step $needs failed"
    return 0
  fi
  local left=$((BUDGET_S - (SECONDS - STARTED)))
  local limit=$((max_s < left ? max_s : left))
  if [ "$limit" -lt 10 ]; then
    record "$name" FAIL 0 "not run: ${left}s left of the ${BUDGET_S}s budget"
    return 0
  fi
  local log="$OUTDIR/$name.log" rc=0 begun=$SECONDS
  export STEP_NOTE="$SCRATCH/$name.note"
  : >"$STEP_NOTE"
  export -f "step_$name"
  timeout --kill-after=15 "$limit" bash -euo pipefail -c "step_$name" >"$log" 2>&1 || rc=$?
  local took=$((SECONDS - begun)) note
  note=$(head -c 300 "$STEP_NOTE" | tr '\n' ' ')
  if [ "$rc" -eq 0 ]; then
    record "$name" ok "$took" "$note"
  elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    record "$name" FAIL "$took" "timed out after ${limit}s (log: $name.log)"
  else
    [ -n "$note" ] || note="last line: $(tail -n 1 "$log" | head -c 200)"
    record "$name" FAIL "$took" "exit $rc (log: $name.log): $note"
  fi
}

: >"$OUTDIR/summary.txt"
echo "gpu_check: commit $COMMIT, output $OUTDIR, budget ${BUDGET_S}s" | tee -a "$OUTDIR/summary.txt"
run_step machine 60
run_step build 240
run_step gpu_tests 90 build
run_step bench_masks_gpu 330 build
echo "gpu_check: ${#FAILED[@]} step(s) failed${FAILED[*]:+: ${FAILED[*]}}; $((SECONDS - STARTED))s in all" |
  tee -a "$OUTDIR/summary.txt"
[ "${#FAILED[@]}" -eq 0 ]
