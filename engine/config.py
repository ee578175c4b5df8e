"""Training configuration: one dataclass that flows whole into the data, the model and the loop.

A preset (engine.presets), a TOML file or the CLI gives a list of TrainConfig (one per MainNet
configuration); each config trains one run per seed. `resolved()` validates every field once (the
boundary: CLI, TOML, job specs, the Train page) and fills what was left None from the MainNet's
registry entry and the paper's defaults (vision: Adam lr 3e-4, 50 epochs, batch 64; text: lr 3e-6,
20 epochs, batch 32). A run stores its resolved config; that is exactly what ran.
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine import datasets, mainnets
from engine.errors import UserError
from engine.jobs.progress import MAX_SEEDS
from engine.sidenet import ORDERS

MODES = ("joint", "head", "frozen", "mainnet-only")
MODE_HELP = {
    "joint": "MainNet and SideNets trained together, L = L_M + alpha * sum L_S (the paper's)",
    "head": "a pretrained backbone frozen; only its final head and the SideNets train (from the feature cache)",
    "frozen": "only the SideNets train, on the MainNet of an earlier run (--init-from; from the feature cache)",
    "mainnet-only": "no SideNet: the 'without SideNet' baseline",
}
CACHED_MODES = ("head", "frozen")  # the backbone is frozen: trained from cached features
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("plateau", "onecycle")
AMP_CHOICES = ("auto", "bf16", "none")  # bf16 autocast: on CUDA by default / always / never
AUGMENTS = ("crop-flip", "flip", "none")  # images, training: the paper's pad-4 crop + flip / a flip / none
PAPER_DEFAULTS = {"image": {"lr": 3e-4, "epochs": 50, "batch_size": 64},
                  "text": {"lr": 3e-6, "epochs": 20, "batch_size": 32}}
FROM_MAINNET_ONLY = "@mainnet-only"  # init_from: the same model/dataset/seed's mainnet-only run in the DB

# field -> (smallest allowed value, largest or None); ints, then floats (finite)
_INTS = {"sidenet_hidden": (1, 65536), "epochs": (1, 100_000), "batch_size": (2, 1 << 20), "patience": (1, 10_000),
         "limit": (2, None), "max_train": (2, None), "max_length": (4, 8192), "num_workers": (0, 256)}
_FLOATS = {"lr": (0.0, 10.0), "head_lr": (0.0, 10.0), "lr_factor": (0.0, 1.0), "alpha": (0.0, 1e6), "momentum": (0.0, 1.0),
           "weight_decay": (0.0, 1.0), "label_smoothing": (0.0, 1.0)}
_CHOICES = {"mode": MODES, "sidenet_order": ORDERS, "optimizer": OPTIMIZERS, "schedule": SCHEDULES,
            "amp": AMP_CHOICES, "augment": AUGMENTS}


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
    head_lr: float | None = None  # the new heads' (SideNets, final head) learning rate; None: lr
    optimizer: str = "adam"  # adam (the paper's) or sgd (nesterov, with momentum)
    schedule: str = "plateau"  # plateau: lr * lr_factor after `patience` epochs without val-loss improvement
    lr_factor: float = 1 / 3  # "a learning rate decay of 3 after 5 epochs without improvement"
    patience: int = 5
    momentum: float = 0.9  # sgd with the plateau schedule; one-cycle cycles it 0.95 -> 0.85 -> 0.95 (PyTorch's)
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    alpha: float = 1.0
    limit: int | None = None  # cap every split (small real subsets for tests and smoke runs)
    max_train: int | None = None  # cap the training split only (a seeded random subset)
    pretrained: bool | None = None  # None: the model's default (ImageNet / hub weights where they install offline)
    init_from: str | None = None  # a run whose checkpoint initialises the model (frozen mode needs it)
    stem: str | None = None  # ResNets: "paper" (no max-pool, the default) or "torchvision"
    pooling: str | None = None  # text encoders: "cls" or "mean" (default: the model's)
    max_length: int = 64  # text: tokens per sentence, [CLS] and [SEP] included
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA, none on CPU; or "bf16" / "none"
    augment: str = "crop-flip"  # images, training: the paper's (pad 4, random crop, horizontal flip), "flip", "none"
    num_workers: int = 0
    preset: str | None = None  # provenance: the preset this config came from (engine.presets)

    @classmethod
    def from_dict(cls, data: dict, where: str = "config") -> TrainConfig:
        """A TrainConfig from a dict (TOML table, job spec); unknown keys are a UserError."""
        if not isinstance(data, dict):
            raise UserError(f"{where}: expected a table of TrainConfig fields, got {type(data).__name__}")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**data)

    def resolved(self) -> TrainConfig:
        """A validated copy with every default filled in; UserError names the first bad field."""
        _check_types(self)
        spec = mainnets.get(self.model)
        data = datasets.get(self.dataset)
        if data.kind != spec.kind:
            raise UserError(f"model {self.model!r} takes {spec.kind} inputs but dataset {self.dataset!r} "
                            f"is {data.kind}")
        if self.mode == "frozen" and not self.init_from:
            raise UserError("frozen mode trains only the SideNet on an already-trained MainNet: "
                            "pass --init-from RUN (e.g. a mainnet-only run)")
        if self.init_from and self.mode not in ("frozen", "joint", "mainnet-only"):
            raise UserError(f"--init-from does not apply to {self.mode} mode (its backbone is the pretrained one)")
        pretrained = spec.default_pretrained if self.pretrained is None else self.pretrained
        if pretrained and spec.pretrained == "none":
            raise UserError(f"{self.model} has no pretrained weights")
        if self.mode == "head" and (spec.pretrained == "none" or not pretrained):
            why = "has no pretrained weights" if spec.pretrained == "none" else "is set to --no-pretrained"
            raise UserError(f"head mode freezes a pretrained backbone, and {self.model} {why}"
                            + "; use --mode joint, or a model with weights (efficientnet-lite0, minilm-l6, ...)")
        stem = _choice("stem", self.stem, spec.stems, self.model)
        pooling = _choice("pooling", self.pooling, spec.poolings, self.model)
        if self.attach:
            valid = mainnets.attach_names(self.model)
            for name in self.attach:
                if name not in valid:
                    raise UserError(f"attach point {name!r} is not valid for {self.model}; "
                                    f"choose one of: {', '.join(valid)}")
        if self.mode == "mainnet-only" and self.attach:
            raise UserError("mainnet-only mode has no SideNet: drop --attach")
        filled = {k: v if getattr(self, k) is None else getattr(self, k) for k, v in PAPER_DEFAULTS[spec.kind].items()}
        return dataclasses.replace(self, **filled, pretrained=bool(pretrained), stem=stem, pooling=pooling,
                                   seeds=list(dict.fromkeys(self.seeds)))

    @property
    def cached(self) -> bool:
        """Trained from the feature cache (a frozen backbone): head and frozen modes."""
        return self.mode in CACHED_MODES

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _choice(name: str, value, choices: tuple, model: str):
    if not choices:
        if value is not None:
            raise UserError(f"{name} does not apply to {model}")
        return None
    if value is None:
        return choices[0]
    if value not in choices and not (name == "pooling" and value == mainnets.text.LEGACY_POOLING):
        raise UserError(f"unknown {name} {value!r} for {model}; choose one of: {', '.join(choices)}")
    return value


def _check_types(cfg: TrainConfig) -> None:
    """Every field has the right type and range (the values a TOML file or a job spec can hold)."""
    for name in ("model", "dataset", "device"):
        if not isinstance(getattr(cfg, name), str) or not getattr(cfg, name).strip():
            raise UserError(f"{name} must be a non-empty string, got {getattr(cfg, name)!r}")
    local_hf_folder = _exists(cfg.model) and Path(cfg.model, "config.json").is_file()  # a saved HF model: fine
    if cfg.model not in mainnets.names() and not local_hf_folder and (cfg.model.startswith(("/", ".", "~"))
                                                                      or _exists(cfg.model)):
        raise UserError(f"model {cfg.model!r} is a local path; give a registered model name "
                        f"({', '.join(mainnets.names())}), a Hugging Face encoder id or a saved Hugging Face "
                        "model folder (with its config.json)")
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            raise UserError(f"unknown {name} {getattr(cfg, name)!r}; choose one of: {', '.join(choices)}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", cfg.device):
        raise UserError(f"unknown device {cfg.device!r}; choose auto, cpu, cuda or cuda:N")
    for name, (lo, hi) in _INTS.items():
        value = getattr(cfg, name)
        if value is None and name not in ("sidenet_hidden", "patience", "max_length", "num_workers"):
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{name} must be an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            raise UserError(f"{name} must be {'at least ' + str(lo) if hi is None else f'between {lo} and {hi}'}, "
                            f"got {value}")
    for name, (lo, hi) in _FLOATS.items():
        value = getattr(cfg, name)
        if value is None and name in ("lr", "head_lr"):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value!r}")
        open_low = name in ("lr", "head_lr", "lr_factor")  # 0 would stop the training
        if not lo <= value <= hi or (open_low and value == 0):
            raise UserError(f"{name} must be in {'(' if open_low else '['}{lo}, {hi}], got {value}")
    if not isinstance(cfg.attach, list) or not all(isinstance(a, str) for a in cfg.attach):
        raise UserError(f"attach must be a list of attach point names, got {cfg.attach!r}")
    if (not isinstance(cfg.seeds, list) or not cfg.seeds or len(cfg.seeds) > MAX_SEEDS
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**31 for s in cfg.seeds)):
        raise UserError(f"seeds must be a list of 1 to {MAX_SEEDS} integers in [0, 2^31), got {cfg.seeds!r}")
    for name in ("pretrained",):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), bool):
            raise UserError(f"{name} must be true or false, got {getattr(cfg, name)!r}")
    for name in ("init_from", "stem", "pooling", "preset"):
        if getattr(cfg, name) is not None and not isinstance(getattr(cfg, name), str):
            raise UserError(f"{name} must be a string, got {getattr(cfg, name)!r}")


def _exists(name: str) -> bool:
    try:
        return Path(name).expanduser().exists()
    except (OSError, ValueError, RuntimeError):
        return False


def load_toml(path: str | Path) -> list[TrainConfig]:
    """Top-level keys are TrainConfig fields shared by all runs; optional [[runs]] tables override them."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise UserError(f"config file {path} does not exist") from err
    except IsADirectoryError as err:
        raise UserError(f"config file {path} is a folder; give a .toml file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"config file {path} cannot be read: {err}") from err
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"config file {path} is not valid TOML: {err}") from err
    runs = data.pop("runs", [{}])
    if not isinstance(runs, list) or not runs:
        raise UserError(f"{path}: [[runs]] must be a list of tables")
    return [TrainConfig.from_dict({**data, **run}, where=str(path)) if isinstance(run, dict) else
            TrainConfig.from_dict(run, where=str(path)) for run in runs]
