"""Which device a model runs on, and whether half precision is used there.

A job asked for ``cuda`` on a machine without one still runs: it falls back to the CPU and
says so once in the log, rather than failing thousands of lines. torch is imported inside the
function so that this package imports without the ``inference`` extra.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import counted

if TYPE_CHECKING:
    import torch

log = logging.getLogger("totask_manifest.inference")


@dataclass
class DevicePlan:
    device: torch.device
    #: half precision in effect (only ever on CUDA)
    fp16: bool
    #: what was decided and why, one line each (also logged)
    notes: list[str] = field(default_factory=list)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"


def select_device(requested: str = "auto", use_fp16: bool = False) -> DevicePlan:
    """``auto`` takes CUDA when present, else MPS, else the CPU; ``cuda``/``cuda:N``/``mps`` fall
    back to the CPU with a logged message; fp16 is ignored (with a message) off CUDA."""
    import torch

    name = (requested or "auto").lower()
    notes: list[str] = []
    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if name == "auto":
        if cuda_ok:
            device = torch.device("cuda")
        elif mps_ok:
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
            notes.append("device auto: no CUDA device found; running on the CPU")
    elif name.startswith("cuda"):
        index = int(name[5:]) if name.startswith("cuda:") else 0
        if not cuda_ok:
            why = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA device is visible"
            device = torch.device("cpu")
            notes.append(f"device {name} requested but {why}; falling back to the CPU")
        elif index >= torch.cuda.device_count():
            device = torch.device("cuda:0")
            notes.append(
                f"device {name} requested but only {counted(torch.cuda.device_count(), 'CUDA device')} "
                f"{'exists' if torch.cuda.device_count() == 1 else 'exist'}; using cuda:0"
            )
        else:
            device = torch.device(name if ":" in name else "cuda")
    elif name == "mps":
        if mps_ok:
            device = torch.device("mps")
        else:
            device = torch.device("cpu")
            notes.append("device mps requested but MPS is not available; falling back to the CPU")
    else:
        device = torch.device("cpu")
    fp16 = bool(use_fp16)
    if fp16 and device.type != "cuda":
        fp16 = False
        notes.append(f"use_fp16 ignored on {device.type}: half precision is used on CUDA only")
    for note in notes:
        level = logging.WARNING if ("falling back" in note or "ignored" in note) else logging.INFO
        log.log(level, "%s", note)
    return DevicePlan(device=device, fp16=fp16, notes=notes)
