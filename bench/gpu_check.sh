#!/usr/bin/env bash
# The GPU run of issue 19, in one command on the GPU machine (Python 3.12 with JAX/PyTorch and
# CUDA, no TensorFlow, nothing installable but carried wheels): installs the wheels from .whl/
# (bench/gpu_wheels.sh fetches them here), imports CIFAR-10 from .gpu_data/ into a data cache,
# runs the ResNet chapter's experiment 4 on JAX with bfloat16 mixed precision through the grid
# runner, and prints images/s, seconds per epoch and the test accuracy beside the book's 93.58%.
#
#   bash bench/gpu_check.sh                      # experiment 4, jax, bfloat16 (the GPU call)
#   bash bench/gpu_check.sh --only smoke=true    # the rehearsal on a CPU (synthetic data)
#   options: --only KEY=VALUE (repeatable), --backend jax|torch|tensorflow,
#            --precision bfloat16|float16|none, --epochs N (cut every run to N epochs: the
#            accuracy then is not the book's), --limit SECONDS (whole grid, default 480),
#            --googlenet (then MiniGoogLeNet's experiment 3 too, if time is left)
# The device call:  carry [".whl", ".gpu_data"], command "bash bench/gpu_check.sh --epochs 20",
#                   timeout_s 600; the summary is also written to $OUT/gpu_check.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ONLY=() BACKEND=jax PRECISION=bfloat16 EPOCHS="" LIMIT=480 GOOGLENET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY+=("$2"); shift 2 ;;
    --backend) BACKEND=$2; shift 2 ;;
    --precision) PRECISION=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --limit) LIMIT=$2; shift 2 ;;
    --googlenet) GOOGLENET=1; shift ;;
    *) echo "gpu_check.sh: unknown argument $1 (see the comment at the top)" >&2; exit 2 ;;
  esac
done
[ ${#ONLY[@]} -gt 0 ] || ONLY=(experiment=4)
PY=${PY:-python3}
WORK=${WORK:-/tmp/gpu_check}
SITE=${SITE:-/tmp/site}
START=$(date +%s)
mkdir -p "$WORK"

# 1. the carried wheels (the exact command of the device notes), ahead of the image's packages
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl
  export PYTHONPATH="$SITE:$REPO/lib${PYTHONPATH:+:$PYTHONPATH}"
else
  echo "no .whl/: using the packages already installed (run bench/gpu_wheels.sh to carry them)"
  export PYTHONPATH="$REPO/lib${PYTHONPATH:+:$PYTHONPATH}"
fi
export KERAS_BACKEND=$BACKEND CVLAB_DATA=${CVLAB_DATA:-$WORK/data} MPLBACKEND=Agg PYTHONUNBUFFERED=1
export TF_CPP_MIN_LOG_LEVEL=3 XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-true}

# 2. what this machine is
$PY - <<'PY'
import importlib, os, platform, subprocess
import keras
print(f"python {platform.python_version()}, keras {keras.__version__}, backend {keras.config.backend()}")
b = keras.config.backend()
if b == "jax":
    import jax
    print("jax", jax.__version__, "devices:", jax.devices())
elif b == "torch":
    import torch
    print("torch", torch.__version__, "cuda:", torch.cuda.is_available(),
          torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
try:
    print(subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip() or "no nvidia-smi output")
except FileNotFoundError:
    print("no nvidia-smi: no NVIDIA GPU here")
print("tensorflow importable:", importlib.util.find_spec("tensorflow") is not None)
PY

# 3. CIFAR-10 into the data cache (the smoke row needs none: it trains on synthetic shapes)
needs_data=1
for o in "${ONLY[@]}"; do [ "$o" = smoke=true ] && needs_data=0; done
if [ $needs_data = 1 ]; then
  if [ -f .gpu_data/cifar10.tar.gz ]; then
    $PY -m cvlab.cli data import cifar10 .gpu_data/cifar10.tar.gz --quiet || exit 1
  else
    echo "no .gpu_data/cifar10.tar.gz: run bench/gpu_wheels.sh here and carry .gpu_data" >&2; exit 1
  fi
fi

# 4. the grid, copied with its notebook made absolute, the precision, and the epochs if cut
make_grid() {  # make_grid NAME -> $WORK/NAME.yaml
  $PY - "$1" "$PRECISION" "$EPOCHS" "$WORK" <<'PY'
import sys
from pathlib import Path
import yaml
name, precision, epochs, work = sys.argv[1:]
src = Path("grids") / f"{name}.yaml"
spec = yaml.safe_load(src.read_text())
spec["notebook"] = str((src.parent / spec["notebook"]).resolve())
if precision != "none":
    spec["params"]["mixed_precision"] = precision
if epochs:
    for row in spec.get("runs", []):
        if "epochs" in row:
            row["epochs"] = int(epochs)
        for stage in (row.get("schedule") or {}).get("stages", []):
            stage["until"] = min(int(stage["until"]), int(epochs))
Path(work, f"{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
PY
}
backend_flag=()
$PY run_grid.py --help 2>/dev/null | grep -q -- "--backend" && backend_flag=(--backend "$BACKEND")
run_grid() {  # run_grid NAME ONLY... : the grid's rows under the time left
  local name=$1; shift
  local left=$(( LIMIT - ($(date +%s) - START) ))
  [ $left -gt 30 ] || { echo "no time left for $name"; return 0; }
  make_grid "$name"
  local only=(); for o in "$@"; do only+=(--only "$o"); done
  echo "== $name ${*} on $BACKEND, precision $PRECISION${EPOCHS:+, $EPOCHS epochs}, $left s left"
  timeout --signal=INT --kill-after=20 "$left" \
    $PY run_grid.py "$WORK/$name.yaml" "${only[@]}" --out "$WORK/out" --force "${backend_flag[@]}" \
    || echo "run_grid.py $name exited $?"
}
run_grid resnet_cifar "${ONLY[@]}"
[ $GOOGLENET = 1 ] && run_grid googlenet_cifar experiment=3

# 5. the figures, from each run's record and history
set +e
$PY - "$WORK/out" "$BACKEND" "$PRECISION" <<'PY' | tee "${OUT:-$WORK}/gpu_check.txt"
import json, statistics, sys
from pathlib import Path
import pandas as pd
out, backend, precision = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
BOOK = {"resnet_cifar": (0.9358, "ResNet experiment 4"), "googlenet_cifar": (0.9081, "MiniGoogLeNet experiment 3")}
TRAIN_IMAGES = {"cifar10": 50000}
records = sorted(out.glob("experiments/*/*/record.json"))
if not records:
    print("no run finished: see the grid's output above"); sys.exit(1)
for path in records:
    rec = json.loads(path.read_text())
    grid = path.parent.parent.name
    params, metrics = rec.get("params", {}), rec.get("metrics", {})
    hist_path = path.parent / "history.csv"
    hist = pd.read_csv(hist_path) if hist_path.exists() else pd.DataFrame()
    times = [t for t in hist.get("time_s", []) if t == t]
    steady = statistics.median(times[1:]) if len(times) > 1 else (times[0] if times else float("nan"))
    n = params.get("train_size") or params.get("train_images") or TRAIN_IMAGES.get(params.get("dataset"))
    book, what = BOOK.get(grid, (None, grid))
    acc = metrics.get("test_accuracy", metrics.get("rank1"))
    print(f"{grid} {path.parent.name}: status {rec.get('status')}, backend {backend}, "
          f"precision {precision}, device {rec.get('device') or rec.get('environment', {}).get('device', '?')}")
    print(f"  epochs {len(times)} of {params.get('epochs')}; first epoch {times[0] if times else float('nan'):.1f} s "
          f"(compilation included), then {steady:.1f} s an epoch")
    if n:
        print(f"  {n / steady:,.0f} training images/s ({n:,} images an epoch)")
    if acc is not None:
        line = f"  test accuracy {acc:.2%}"
        if book is not None and not params.get("smoke"):
            line += f" beside the book's {book:.2%} ({what}, {params.get('epochs')} epochs)"
        print(line)
    err = rec.get("error")
    if err:
        if isinstance(err, dict):
            tb = str(err.get("traceback", "")).strip().splitlines()
            print(f"  error: {err.get('type')}: {err.get('message')}")
            print("  " + "\n  ".join(tb[-12:]))
        else:
            print("  error:", str(err)[:2000])
failed = [p.parent.name for p in records if json.loads(p.read_text()).get("status") != "ok"]
sys.exit(1 if failed else 0)
PY
status=${PIPESTATUS[0]}
echo "gpu_check.sh: $(( $(date +%s) - START )) s in all"
exit $status
