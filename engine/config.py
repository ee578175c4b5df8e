"""Training configurations: one dataclass, the presets, and TOML files.

A preset or a TOML file gives a list of TrainConfig (one per MainNet configuration); each
config trains one run per seed. Fields left None take the paper's defaults for the model's
kind (vision: Adam lr 3e-4, 50 epochs, batch 64; text: lr 3e-6, 20 epochs, batch 32).
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError
from engine.mainnets import attach_names, model_kind

AMP_CHOICES = ("auto", "bf16", "none")  # bf16 autocast: on CUDA by default / always / never

MODES = ("joint", "frozen", "mainnet-only")
PAPER_DEFAULTS = {"image": {"lr": 3e-4, "epochs": 50, "batch_size": 64},
                  "text": {"lr": 3e-6, "epochs": 20, "batch_size": 32}}


@dataclass
class TrainConfig:
    model: str = "resnet18"
    dataset: str = "fashion-mnist"
    attach: list[str] = field(default_factory=list)  # empty: the model's default (the paper's)
    sidenet_hidden: int = 32
    sidenet_order: str = "linear-bn-relu"
    mode: str = "joint"
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_factor: float = 1 / 3  # "a learning rate decay of 3 after 5 epochs without improvement"
    patience: int = 5
    alpha: float = 1.0
    limit: int | None = None  # cap every split (small real subsets for tests and smoke runs)
    max_train: int | None = None  # cap the training split only (a seeded random subset)
    pretrained: bool | None = None
    init_from: str | None = None  # a run whose checkpoint initialises the model (needed by frozen mode)
    max_length: int = 64
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA, none on CPU; or "bf16" / "none"
    num_workers: int = 0

    def resolved(self) -> "TrainConfig":
        """A copy with the paper's defaults filled in; validates the choices."""
        kind = model_kind(self.model)
        if self.mode not in MODES:
            raise UserError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.mode == "frozen" and not self.init_from:
            raise UserError("frozen mode trains only the SideNet on an already-trained MainNet: "
                            "pass --init-from RUN (e.g. a mainnet-only run)")
        if self.amp not in AMP_CHOICES:
            raise UserError(f"unknown amp {self.amp!r}; choose {', '.join(AMP_CHOICES)}")
        if self.attach:
            valid = attach_names(self.model)
            for name in self.attach:
                if name not in valid:
                    raise UserError(f"attach point {name!r} is not valid for {self.model}; choose one of: {', '.join(valid)}")
        filled = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in PAPER_DEFAULTS[kind].items()}
        out = dataclasses.replace(self, **filled)
        for name in ("epochs", "batch_size", "sidenet_hidden"):
            if getattr(out, name) < 1:
                raise UserError(f"{name} must be at least 1")
        for name in ("limit", "max_train"):
            if getattr(out, name) is not None and getattr(out, name) < 2:
                raise UserError(f"{name} must be at least 2")
        return out

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _paper_grid(models: dict[str, dict], dataset: str) -> list[TrainConfig]:
    return [TrainConfig(model=m, dataset=dataset, seeds=[0, 1, 2, 3, 4], **extra) for m, extra in models.items()]


PRESETS: dict[str, list[TrainConfig]] = {
    # Under a minute on a 2-core CPU: real but tiny subsets, one epoch.
    "smoke": [
        TrainConfig(model="resnet18", dataset="fashion-mnist", epochs=1, limit=256, batch_size=64),
        TrainConfig(model="minilm-l6", dataset="rt-polarity", epochs=1, limit=96, batch_size=32, lr=5e-5),
    ],
    # At most ~15 minutes on a 2-core CPU; results good enough to explore.
    "quickstart": [
        TrainConfig(model="resnet18", dataset="fashion-mnist", epochs=2, max_train=24_000),
        TrainConfig(model="minilm-l6", dataset="rt-polarity", epochs=1, lr=5e-5),
    ],
    # The paper's grids (GPU work): 4 ResNets / 3 encoders, 5 seeds, paper hyperparameters.
    "paper-vision": _paper_grid({f"resnet{d}": {"pretrained": True} for d in (18, 34, 50, 152)}, "cifar10"),
    "paper-text": _paper_grid({"distilbert-base-uncased": {"batch_size": 32}, "bert-base-uncased": {"batch_size": 16},
                               "bert-large-uncased": {"batch_size": 3}}, "sst2"),
}


def preset(name: str) -> list[TrainConfig]:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return [dataclasses.replace(c) for c in PRESETS[name]]


def load_toml(path: str | Path) -> list[TrainConfig]:
    """Top-level keys are TrainConfig fields shared by all runs; optional [[runs]] tables override them."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError as err:
        raise UserError(f"config file {path} does not exist") from err
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"config file {path} is not valid TOML: {err}") from err
    runs = data.pop("runs", [{}])
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    configs = []
    for run in runs:
        merged = {**data, **run}
        unknown = set(merged) - names
        if unknown:
            raise UserError(f"unknown key(s) in {path}: {', '.join(sorted(unknown))}")
        configs.append(TrainConfig(**merged))
    return configs
