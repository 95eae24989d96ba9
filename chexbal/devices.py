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


def keep_precision(amp: str, device: torch.device, started: bool | None, what: Path, doing: str = "") -> bool:
    """bf16 autocast for work that resumes: the precision it was started in (`started`; None for new
    work or work recorded by an older chexbal), since bf16 and fp32 give different numbers and a run
    begun on a CPU with bf16 units may resume on one without (`auto` would switch). `--amp` naming
    the other precision is refused. `doing`: what the precision is of, for the message."""
    wanted = amp_enabled(amp, device)
    if started is None:
        return wanted
    if started != wanted and amp != "auto":
        begun, keep = ("bf16", "on") if started else ("fp32", "off")
        raise ChexbalError(f"{what} was started with {begun}{doing}: finish it with --amp {keep} or auto, or start it again", 2)
    return started
