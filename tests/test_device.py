"""engine.runtime.device: device choice, the one amp rule, the one device-naming function."""
import platform

import pytest
import torch

from engine.errors import UserError
from engine.runtime import device as D


def test_pick_device(monkeypatch):
    assert D.pick_device("cpu") == torch.device("cpu")
    assert D.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="unknown device 'tpu'; choose auto, cpu, cuda or cuda:N"):
        D.pick_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert D.pick_device("auto") == torch.device("cpu")
    for name in ("cuda", "cuda:0"):
        with pytest.raises(UserError, match=f"--device {name} asked for, but no CUDA GPU is visible"):
            D.pick_device(name)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert D.pick_device("auto") == torch.device("cuda") and D.pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(UserError, match=r"--device cuda:3: only 1 CUDA device\(s\) visible"):
        D.pick_device("cuda:3")


def test_amp_rule():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert D.amp_dtype(cpu, "auto") is None and D.amp_dtype(cuda, "auto") is torch.bfloat16
    assert D.amp_dtype(cpu, "bf16") is torch.bfloat16 and D.amp_dtype(cuda, "none") is None
    with D.autocast(cpu, "auto"):
        assert not torch.is_autocast_enabled("cpu")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with D.autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_to_device_moves_tensors_and_dicts():
    x = D.to_device(torch.ones(2), torch.device("cpu"))
    assert x.device.type == "cpu"
    batch = D.to_device({"input_ids": torch.ones(1, 3), "attention_mask": torch.ones(1, 3)}, torch.device("cpu"))
    assert set(batch) == {"input_ids", "attention_mask"} and all(v.device.type == "cpu" for v in batch.values())


def test_device_label(monkeypatch):
    label = D.device_label("cpu")
    assert label == f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    assert D.device_label(torch.device("cpu")) == label
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H200")
    assert D.device_label(torch.device("cuda")) == "NVIDIA H200"


@pytest.mark.gpu
def test_device_label_names_the_gpu():
    assert D.device_label("cuda") == torch.cuda.get_device_name(0) and D.device_label("auto") == D.device_label("cuda")
    with D.autocast(torch.device("cuda"), "auto"):
        assert (torch.ones(2, 2, device="cuda") @ torch.ones(2, 2, device="cuda")).dtype == torch.bfloat16
