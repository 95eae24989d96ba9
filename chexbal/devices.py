"""Which device to run on, and whether bf16 autocast pays there."""

from __future__ import annotations

from pathlib import Path

import torch

from chexbal.errors import ChexbalError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ChexbalError(f"--device {name} asked for, but no CUDA device is available", 2)
    try:
        return torch.device(name)
    except RuntimeError:
        raise ChexbalError(f"--device must be auto, cpu or cuda[:N], not {name!r}", 2) from None


def amp_enabled(amp: str, device: torch.device) -> bool:
    if amp not in ("auto", "on", "off"):
        raise ChexbalError(f"--amp must be auto, on or off, not {amp!r}", 2)
    if amp != "auto":
        return amp == "on"
    if device.type == "cuda":
        return True
    try:  # bf16 autocast pays on CPUs with bf16 matrix units (AVX512-BF16, AMX), not elsewhere
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
