#!/bin/sh
# Install PyTorch into the environment of the given interpreter, choosing the build for this machine:
# the default (CUDA) build where an NVIDIA GPU answers, the default build on macOS (MPS), and the CPU
# build everywhere else, so that a machine without a GPU never downloads the CUDA libraries.
# The CPU build comes from a local wheel when pip already finds one (find-links), else from the
# PyTorch CPU index. Nothing is done when torch already imports.
set -eu
PY=${1:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install-torch: torch already installed ($("$PY" -c 'import torch; print(torch.__version__)'))"
    exit 0
fi
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "install-torch: NVIDIA GPU found, installing the CUDA build"
    exec "$PY" -m pip install "torch==$TORCH_VERSION"
fi
if [ "$(uname -s)" = "Darwin" ]; then
    exec "$PY" -m pip install "torch==$TORCH_VERSION"
fi
echo "install-torch: no GPU, installing the CPU build of torch $TORCH_VERSION"
if "$PY" -m pip install "torch==$TORCH_VERSION+cpu" 2>/dev/null; then
    exit 0
fi
exec "$PY" -m pip install "torch==$TORCH_VERSION+cpu" --extra-index-url "$TORCH_CPU_INDEX"
