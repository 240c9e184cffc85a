#!/bin/sh
# Install PyTorch into the environment of the given interpreter, choosing the build for this machine:
# a CUDA build that the NVIDIA driver supports where an NVIDIA GPU answers, the default build on macOS
# (MPS), and the CPU build everywhere else, so that a machine without a GPU never downloads the CUDA
# libraries. The CPU build comes from a local wheel when pip already finds one (find-links), else from
# the PyTorch CPU index. Nothing is installed when torch already imports.
#
# With a GPU, the build is chosen from the driver's CUDA version (the "CUDA Version: X.Y" in the header
# of `nvidia-smi`) and the GPUs' compute capability, then torch must see the GPU (torch.cuda.is_available()),
# else the script stops with exit status 2 and one line saying why. That check also runs when torch is
# already installed, so a CPU-only torch on a GPU machine is never used by mistake.
#
# CUDA builds of torch 2.13 (PyTorch's release compatibility matrix, RELEASE.md): cu126 and cu130 stable,
# cu132 experimental. cu130 needs compute capability 7.5 (Turing) or newer; cu126 also covers Maxwell,
# Pascal and Volta. A driver reporting CUDA 12.0-12.5 gets cu126 through CUDA minor-version compatibility;
# if that fails on a machine, the final check says so. For another torch version, or to choose the build
# yourself, set TORCH_CUDA (cu126, cu130, cu132, ... or cpu for the CPU build on a GPU machine).
#
# Environment: TORCH_VERSION (2.13.0), TORCH_CUDA (chosen from the driver), TORCH_INDEX
# (https://download.pytorch.org/whl; the CUDA build comes from $TORCH_INDEX/$TORCH_CUDA),
# TORCH_CPU_INDEX (https://download.pytorch.org/whl/cpu), DRY_RUN=1 (print the pip command, run nothing).
set -eu
PY=${1:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
TORCH_INDEX=${TORCH_INDEX:-https://download.pytorch.org/whl}
TORCH_CUDA=${TORCH_CUDA:-}
DRY_RUN=${DRY_RUN:-}

fail() {
    echo "install-torch: error: $*" >&2
    exit 2
}

# The driver's CUDA version (e.g. 12.4) from the nvidia-smi header; empty when it does not say.
driver_cuda() {
    nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1
}

# The lowest compute capability of the GPUs (e.g. 6.1); empty when nvidia-smi cannot tell.
lowest_compute_capability() {
    nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null \
        | sed -n 's/^ *\([0-9][0-9]*\.[0-9][0-9]*\) *$/\1/p' | sort -n | head -n 1
}

# The newest PyTorch CUDA build (cuXYZ) for driver CUDA version $1 and compute capability $2 (may be
# empty); prints nothing when no build of torch 2.13 runs on that driver.
cuda_build_for() {
    major=${1%%.*}
    cap_major=${2%%.*}
    cap_minor=${2#*.}
    old_gpu=no
    if [ -n "$2" ] && { [ "$cap_major" -lt 7 ] || { [ "$cap_major" -eq 7 ] && [ "$cap_minor" -lt 5 ]; }; }; then
        old_gpu=yes
    fi
    if [ "$major" -ge 13 ] && [ "$old_gpu" = no ]; then
        echo cu130
    elif [ "$major" -ge 12 ]; then
        echo cu126
    fi
}

# Exit 2 unless torch imports with CUDA and sees a GPU.
check_cuda() {
    if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; then
        found=$("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null || echo "no importable torch")
        fail "nvidia-smi sees a GPU but torch has no CUDA ($found; $1); reinstall with $0 (set TORCH_CUDA, e.g. cu126, to choose the build; TORCH_CUDA=cpu to accept the CPU build)"
    fi
    echo "install-torch: torch sees the GPU ($("$PY" -c 'import torch; print(torch.__version__, torch.cuda.get_device_name(0))'))"
}

pip_install() {
    if [ -n "$DRY_RUN" ]; then
        echo "install-torch: would run: $PY -m pip install $*"
        return 0
    fi
    "$PY" -m pip install "$@"
}

have_gpu=no
if [ "$TORCH_CUDA" != cpu ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    have_gpu=yes
fi

if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "install-torch: torch already installed ($("$PY" -c 'import torch; print(torch.__version__)'))"
    if [ "$have_gpu" = yes ]; then
        check_cuda "installed before this script ran: pip uninstall torch first"
    fi
    exit 0
fi
if [ "$have_gpu" = yes ]; then
    cuda=$(driver_cuda)
    if [ -z "$TORCH_CUDA" ]; then
        [ -n "$cuda" ] || fail "nvidia-smi sees a GPU but does not report the driver's CUDA version; set TORCH_CUDA (e.g. cu126)"
        TORCH_CUDA=$(cuda_build_for "$cuda" "$(lowest_compute_capability)")
        [ -n "$TORCH_CUDA" ] || fail "the NVIDIA driver supports CUDA $cuda, older than any CUDA build of torch $TORCH_VERSION (CUDA 12 or newer); update the driver, or set TORCH_CUDA=cpu for the CPU build"
    fi
    echo "install-torch: NVIDIA GPU found (driver CUDA ${cuda:-unknown}), installing torch $TORCH_VERSION+$TORCH_CUDA"
    pip_install "torch==$TORCH_VERSION+$TORCH_CUDA" --extra-index-url "$TORCH_INDEX/$TORCH_CUDA"
    [ -n "$DRY_RUN" ] || check_cuda "driver CUDA ${cuda:-unknown}, build $TORCH_CUDA"
    exit 0
fi
if [ "$(uname -s)" = "Darwin" ]; then
    exec "$PY" -m pip install "torch==$TORCH_VERSION"
fi
echo "install-torch: no GPU, installing the CPU build of torch $TORCH_VERSION"
if "$PY" -m pip install "torch==$TORCH_VERSION+cpu" 2>/dev/null; then
    exit 0
fi
exec "$PY" -m pip install "torch==$TORCH_VERSION+cpu" --extra-index-url "$TORCH_CPU_INDEX"
