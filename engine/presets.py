"""Named lists of TrainConfig: the smoke test, the quickstart and the paper's experiments.

Each preset says which protocol it follows and where it deviates from the paper (epochs, seeds,
data), so a table built from its runs can say so too (engine.analysis.report). The `preset`
field of every config it returns names it (stored with the run as provenance).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.config import TrainConfig
from engine.errors import UserError


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    configs: tuple[TrainConfig, ...]
    protocol: str = ""  # the paper's protocol it follows, and how it deviates
    where: str = "cpu"  # "cpu" (minutes on a 2-core CPU), "gpu", "gpu+internet"


def _seeds(n: int) -> list[int]:
    return list(range(n))


def _grid(models: dict[str, dict], dataset: str, modes=("joint",), seeds: int = 5, **common) -> tuple:
    return tuple(TrainConfig(model=m, dataset=dataset, mode=mode, seeds=_seeds(seeds), **{**common, **extra})
                 for m, extra in models.items() for mode in modes)


PAPER_VISION = {f"resnet{d}": {"pretrained": True} for d in (18, 34, 50, 152)}
PAPER_TEXT = {"distilbert-base-uncased": {"batch_size": 32}, "bert-base-uncased": {"batch_size": 16},
              "bert-large-uncased": {"batch_size": 3}}

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("smoke", "ResNet18 on 256 Fashion-MNIST images per split and MiniLM-L6 on 96 sentences, one epoch "
           "(tests; under a minute)", (
               TrainConfig(model="resnet18", dataset="fashion-mnist", epochs=1, limit=256, batch_size=64),
               TrainConfig(model="minilm-l6", dataset="rt-polarity", epochs=1, limit=96, batch_size=32, lr=5e-5),
           ), protocol="none: a functional test on tiny real subsets"),
    Preset("quickstart", "MiniLM-L6 on rt-polarity and ResNet18 on Fashion-MNIST (make run)", (
        TrainConfig(model="resnet18", dataset="fashion-mnist", epochs=2, max_train=24_000),
        TrainConfig(model="minilm-l6", dataset="rt-polarity", epochs=1, lr=5e-5),
    ), protocol="a fast recipe, not the paper's"),
    Preset("paper-vision", "Figure 2 / Tables 1, 2, 4: ResNet18/34/50/152 with ImageNet weights on CIFAR-10, "
           "with and without SideNet, 5 seeds", _grid(PAPER_VISION, "cifar10", ("joint", "mainnet-only")),
           protocol="the paper's: Adam 3e-4, 50 epochs, batch 64, lr /3 after 5 epochs without improvement",
           where="gpu+internet"),
    Preset("paper-text", "Figure 4 / Table 2: DistilBERT, BERT-base, BERT-large on SST-2, with and without "
           "SideNet, 5 seeds", _grid(PAPER_TEXT, "sst2", ("joint", "mainnet-only")),
           protocol="the paper's: Adam 3e-6, 20 epochs, batch 32/16/3", where="gpu+internet"),
)}


def preset(name: str) -> list[TrainConfig]:
    """The configs of a preset (fresh copies), each tagged with the preset's name."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return [dataclasses.replace(c, seeds=list(c.seeds), attach=list(c.attach), preset=name)
            for c in PRESETS[name].configs]
