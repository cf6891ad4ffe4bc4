#!/usr/bin/env bash
# `make bench-train` on a bare CUDA machine that has its own python3 with torch, timm, numba,
# scipy, pandas and tqdm but no network and no venv (a lent GPU box, a Kaggle session): the two
# packages such images lack travel as wheels in .whl/.
#
#   scripts/gpu-bench-train.sh wheels          # on a machine with pip access: fill .whl/
#   scripts/gpu-bench-train.sh [BENCH ARGS]    # on the GPU machine: install .whl/, then the
#                                              # data, the gpu-inception profile's cache, the benchmark
# The figures go to stdout and, when $OUT is set, to $OUT/bench-train.log too.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
WHEELS="isal==1.9.1 rocket-fft==0.4.1"  # pinned as in requirements.txt

if [ "${1:-}" = wheels ]; then
  # --platform is matched exactly: list the manylinux tags the packages publish.
  "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version "${WHEEL_PYTHON:-3.12}" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
  exit
fi

if compgen -G ".whl/*.whl" >/dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/deepsync-site .whl/*.whl
  export PYTHONPATH=/tmp/deepsync-site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/deepsync-numba}
"$PYTHON" -c "import torch, timm, numba, rocket_fft; print('torch', torch.__version__, 'timm',
timm.__version__, 'numba', numba.__version__, 'cuda', torch.cuda.is_available())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
"$PYTHON" -m deepsync.bench.train --profile gpu-inception "$@" 2>&1 | tee "${OUT:-/tmp}/bench-train.log"
