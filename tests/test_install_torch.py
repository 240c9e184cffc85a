"""scripts/install-torch.sh chooses the torch build from the NVIDIA driver and fails loudly without CUDA.

No GPU is needed: a fake ``nvidia-smi`` prints a real-looking header for a given driver CUDA version and
compute capabilities, and a fake interpreter records the ``pip install`` arguments and answers
``torch.cuda.is_available()`` as told. The script runs under ``sh`` (dash here), so it stays POSIX.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "install-torch.sh"

FAKE_NVIDIA_SMI = r"""#!/bin/sh
if [ -n "${FAKE_NO_GPU:-}" ]; then
    echo "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver."
    exit 9
fi
case "$*" in
    -L) echo "GPU 0: NVIDIA GeForce RTX 3090 (UUID: GPU-5c1d0f3e-8e3b-4a55-9a5e-2a8f4c1e7b10)" ;;
    *compute_cap*) printf '%s\n' $FAKE_CAPS ;;
    "")
        echo "Tue Jun  9 10:12:44 2026"
        echo "+-----------------------------------------------------------------------------------------+"
        echo "| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: $FAKE_DRIVER_CUDA     |"
        echo "|-----------------------------------------+------------------------+----------------------+"
        echo "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |"
        echo "|   0  NVIDIA GeForce RTX 3090        Off |   00000000:01:00.0 Off |                  N/A |"
        echo "+-----------------------------------------------------------------------------------------+"
        ;;
    *) exit 4 ;;
esac
"""

FAKE_PYTHON = r"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = pip ]; then
    shift 2
    echo "$*" >> "$FAKE_STATE/pip.log"
    touch "$FAKE_STATE/installed"
    exit 0
fi
if [ "$1" = -c ]; then
    if [ ! -f "$FAKE_STATE/installed" ]; then
        echo "ModuleNotFoundError: No module named 'torch'" >&2
        exit 1
    fi
    case "$2" in
        *cuda.is_available*) [ "${FAKE_CUDA:-0}" = 1 ]; exit $? ;;
        *get_device_name*) echo "2.13.0 NVIDIA GeForce RTX 3090" ;;
        *torch.version.cuda*) echo "2.13.0+cpu CUDA None" ;;
        *) echo "2.13.0" ;;
    esac
    exit 0
fi
exit 3
"""


def _tools_dir(tmp_path: Path) -> Path:
    """A folder with only the tools the script needs, so a real nvidia-smi on the machine is not seen."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("sed", "head", "sort", "uname", "touch", "printf", "cat"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    return tools


def run_script(
    tmp_path: Path,
    *,
    driver_cuda: str | None = "12.4",
    caps: str = "8.6",
    cuda_works: bool = True,
    installed: bool = False,
    **env: str,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the script with the fakes; ``driver_cuda=None`` means no nvidia-smi at all."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    if installed:
        (state / "installed").touch()
    python = fakebin / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    if driver_cuda is not None:
        smi = fakebin / "nvidia-smi"
        smi.write_text(FAKE_NVIDIA_SMI)
        smi.chmod(0o755)
    environ = {
        "PATH": f"{fakebin}{os.pathsep}{_tools_dir(tmp_path)}",
        "FAKE_STATE": str(state),
        "FAKE_DRIVER_CUDA": driver_cuda or "",
        "FAKE_CAPS": caps,
        "FAKE_CUDA": "1" if cuda_works else "0",
        **env,
    }
    sh = shutil.which("sh") or "/bin/sh"
    proc = subprocess.run(
        [sh, str(SCRIPT), str(python)], env=environ, capture_output=True, text=True, timeout=60
    )
    log = state / "pip.log"
    return proc, (log.read_text().splitlines() if log.exists() else [])


def _index(build: str) -> str:
    return f"install torch==2.13.0+{build} --extra-index-url https://download.pytorch.org/whl/{build}"


@pytest.mark.parametrize(
    ("driver_cuda", "caps", "build"),
    [
        ("12.4", "8.6", "cu126"),  # CUDA 12.0-12.5 drivers: cu126 through minor-version compatibility
        ("12.8", "8.9", "cu126"),
        ("13.0", "9.0", "cu130"),
        ("13.2", "12.0", "cu130"),  # cu132 is experimental for torch 2.13: only when asked for
        ("13.0", "8.6 6.1", "cu126"),  # a Pascal card among the GPUs: cu130 has no kernels for it
        ("13.0", "7.0", "cu126"),  # Volta
        ("13.0", "7.5", "cu130"),  # Turing is the oldest cu130 builds for
    ],
)
def test_the_build_follows_the_driver_and_the_gpus(tmp_path, driver_cuda, caps, build):
    proc, pip = run_script(tmp_path, driver_cuda=driver_cuda, caps=caps)
    assert proc.returncode == 0, proc.stderr
    assert pip == [_index(build)]
    assert "torch sees the GPU" in proc.stdout


def test_torch_cuda_overrides_the_choice(tmp_path):
    proc, pip = run_script(tmp_path, driver_cuda="13.2", TORCH_CUDA="cu132")
    assert proc.returncode == 0, proc.stderr
    assert pip == [_index("cu132")]


def test_fails_loudly_when_the_installed_build_has_no_cuda(tmp_path):
    proc, pip = run_script(tmp_path, driver_cuda="12.4", cuda_works=False)
    assert proc.returncode == 2
    assert pip == [_index("cu126")]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("install-torch: error: nvidia-smi sees a GPU")
    assert "torch has no CUDA" in lines[0] and "2.13.0+cpu CUDA None" in lines[0]


def test_fails_loudly_when_a_cpu_torch_is_already_there_on_a_gpu_machine(tmp_path):
    proc, pip = run_script(tmp_path, installed=True, cuda_works=False)
    assert proc.returncode == 2 and pip == []
    assert "torch has no CUDA" in proc.stderr and "pip uninstall torch" in proc.stderr


def test_an_installed_cuda_torch_is_kept(tmp_path):
    proc, pip = run_script(tmp_path, installed=True, cuda_works=True)
    assert proc.returncode == 0 and pip == []


def test_a_driver_older_than_cuda_12_is_refused_before_installing(tmp_path):
    proc, pip = run_script(tmp_path, driver_cuda="11.4")
    assert proc.returncode == 2 and pip == []
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "supports CUDA 11.4" in lines[0] and "TORCH_CUDA=cpu" in lines[0]


def test_dry_run_prints_the_command_and_installs_nothing(tmp_path):
    proc, pip = run_script(tmp_path, driver_cuda="13.0", caps="9.0", DRY_RUN="1")
    assert proc.returncode == 0 and pip == []
    assert "would run:" in proc.stdout and "torch==2.13.0+cu130" in proc.stdout


@pytest.mark.parametrize(
    "setup",
    [
        {"driver_cuda": None},  # no nvidia-smi
        {"FAKE_NO_GPU": "1"},  # nvidia-smi without a GPU
        {"TORCH_CUDA": "cpu"},  # a GPU, but the CPU build asked for
    ],
)
def test_without_a_gpu_the_cpu_build_comes_first_from_a_local_wheel(tmp_path, setup):
    proc, pip = run_script(tmp_path, cuda_works=False, **setup)
    assert proc.returncode == 0, proc.stderr
    assert pip == ["install torch==2.13.0+cpu"]  # no index: a wheel that pip finds locally
    assert "no GPU, installing the CPU build" in proc.stdout
