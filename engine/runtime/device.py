"""Devices and precision: which device, which autocast, how a device is named in the DB and the UI."""
from __future__ import annotations

import platform

import torch

from engine.errors import UserError


def pick_device(name: str = "auto") -> torch.device:
    """"auto" -> CUDA when torch sees a GPU, else the CPU; "cuda" without a GPU is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but no CUDA GPU is visible")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise UserError(f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype of an amp setting on a device: bf16 on CUDA by default (or on CPU when
    asked), None when autocast is off."""
    return torch.bfloat16 if amp == "bf16" or (amp == "auto" and device.type == "cuda") else None


def autocast(device: torch.device, amp: str):
    """bf16 autocast where amp_dtype says so; a disabled (no-op) autocast otherwise."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp_dtype(device, amp) is not None)


def to_device(batch, device: torch.device):
    """A tensor or a dict of tensors (a text batch, cached features) on the device."""
    if isinstance(batch, dict):
        return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    return batch.to(device, non_blocking=True)


def device_label(device: torch.device | str = "auto") -> str:
    """How runs, latency rows and the UI name a device: the GPU's name ("NVIDIA H200"), or the CPU
    with its torch threads ("cpu (x86_64, 2 threads)")."""
    device = pick_device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
