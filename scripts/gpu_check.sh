#!/usr/bin/env bash
# One prepared run on a CUDA machine: the CUDA tests, then the GPU figures of docs/speed.md.
#
#   bash scripts/gpu_check.sh            # writes runs/gpu/ (or $OUT when set)
#
# Every step has its own time limit and the whole script a budget (GPU_CHECK_BUDGET seconds,
# default 450), so one slow or failing step costs only its own share; the essential checks come
# first. The log (log.txt) and the benchmarks' JSON files go to the output folder; DeepXDE is
# timed when it is importable (on a machine without the package index, carry its wheels:
# deepxde, scikit-optimize and pyaml, see docs/speed.md). The last step, the whole suite, needs
# about 150 s more than the default budget leaves (GPU_CHECK_BUDGET=650) and pytest-xdist.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${OUT:-$ROOT/runs/gpu}")   # a relative OUT is taken from where the script is called
cd "$ROOT"
BUDGET=${GPU_CHECK_BUDGET:-450}
DEVICE=${GPU_CHECK_DEVICE:-cuda}   # cpu: a dry run of the script itself on a machine without a GPU
ONLY=${GPU_CHECK_ONLY:-.}          # a regular expression: run only the steps whose names match
PY=${PYTHON:-python3}
[[ $BUDGET =~ ^[1-9][0-9]*$ ]] || { echo "gpu_check.sh: GPU_CHECK_BUDGET must be a positive number of seconds, got '$BUDGET'" >&2; exit 2; }
[[ $DEVICE == cuda || $DEVICE == cpu ]] || { echo "gpu_check.sh: GPU_CHECK_DEVICE must be cuda or cpu, got '$DEVICE'" >&2; exit 2; }
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
START=$SECONDS

# step NAME LIMIT COMMAND...: run COMMAND with at most LIMIT seconds (less if the budget is short)
step() {
    local name=$1 limit=$2
    shift 2
    [[ $name =~ $ONLY ]] || return 0
    local left=$((BUDGET - (SECONDS - START)))
    if ((left < 20)); then
        echo "== $name: skipped, $left s of the budget left"
        RESULTS+=("$name: skipped")
        return
    fi
    ((limit > left)) && limit=$left
    echo
    echo "== $name (limit $limit s, $(date -u +%H:%M:%S) UTC): $*"
    local begin=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - begin)) s"
    RESULTS+=("$name: exit $rc, $((SECONDS - begin)) s")
}
RESULTS=()

main() {
step environment 30 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv;
  $PY -c 'import torch, sys; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda,
  torch.cuda.get_device_name(0) if torch.cuda.is_available() else \"NO CUDA\")';
  $PY -c 'import deepxde' 2>/dev/null && echo 'deepxde importable' || echo 'deepxde not importable';
  (c++ --version || g++ --version) 2>&1 | head -1; nproc"

# the CUDA paths against the CPU: LAM (every implementation), the fast path, L-BFGS, the problems
step cuda-tests 150 $PY -m pytest -m cuda -q -p no:cacheprovider
# the benchmark's own tests, DeepXDE's device scope among them
step bench-tests 60 $PY -m pytest -q -p no:cacheprovider tests/test_bench_train.py

# step time on DeepXDE's Burgers configuration (DeepXDE on its own device), peak memory, torch.func
step bench-lam 120 $PY -m pinn_lam bench train burgers --device $DEVICE --optimizer lam --func --json "$OUT/steps_lam.json"
step bench-adam 90 $PY -m pinn_lam bench train burgers --device $DEVICE --optimizer adam --json "$OUT/steps_adam.json"
# the sprint preset's network (32x5, 3072 points, hard constraints)
step bench-sprint-net 60 $PY -m pinn_lam bench train burgers --device $DEVICE --optimizer lam --width 32 --depth 5 \
    --points 3072 --hard --json "$OUT/steps_sprint_net.json"
# LAM's update on 1e8 parameters against Adam and RMSprop (the README's optimizer table)
step bench-optimizer 60 $PY -m pinn_lam bench optimizer --device $DEVICE --params 100000000
# ... and on the 921 parameters in 8 tensors of DeepXDE's Burgers network (launch-bound)
step bench-optimizer-small 40 $PY -m pinn_lam bench optimizer --device $DEVICE --params 921 --tensors 8
# the command line on CUDA end to end, and its checkpoint restored on the CPU
step solve-heat 60 bash -c "$PY -m pinn_lam solve heat --preset quick --device $DEVICE --no-progress \
    --output runs/gpu-heat && cp runs/gpu-heat/metrics.json \"$OUT/solve_heat_metrics.json\" && $PY -c '
from pinn_lam.training.checkpoint import load_checkpoint
state = load_checkpoint(\"runs/gpu-heat/checkpoint.pt\")
devices = {t.device.type for t in state[\"model\"].values()}
print(\"checkpoint written on CUDA, loaded on the CPU: model tensors on\", devices)
assert devices == {\"cpu\"}'"
# wall time to 1e-2 and 1e-3 (the sprint preset), then DeepXDE's recipe, both seed 0
step accuracy-sprint 150 $PY -m pinn_lam bench train burgers --device $DEVICE --iterations 1 --rounds 1 --warmup 0 \
    --no-deepxde --accuracy --preset sprint --seed 0 --time-limit 120 --json "$OUT/accuracy_sprint.json"
step deepxde-recipe 150 $PY -m pinn_lam bench train burgers --device $DEVICE --iterations 1 --rounds 1 --warmup 0 \
    --deepxde-recipe --seed 0 --time-limit 120 --json "$OUT/accuracy_deepxde.json"
# the whole suite on a machine where CUDA is every command's default device
if $PY -c "import xdist" 2>/dev/null; then
    step test-suite 150 $PY -m pytest -q -p no:cacheprovider -n 8
else
    step test-suite 300 $PY -m pytest -q -p no:cacheprovider
fi

echo
echo "== summary ($((SECONDS - START)) s)"
printf '%s\n' "${RESULTS[@]+"${RESULTS[@]}"}"
}

main 2>&1 | tee -a "$OUT/log.txt"
