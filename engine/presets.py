"""Named lists of TrainConfig: the smoke test, the quickstart and the paper's experiments.

Each preset says which protocol it follows and where it deviates from the paper (epochs, seeds,
data), so a table built from its runs can say so too (engine.analysis.report). The `preset`
field of every config it returns names it (stored with the run as provenance).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from engine.config import FROM_MAINNET_ONLY, TrainConfig
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
# The fast vision recipe (airbench-style): SGD nesterov + one-cycle, label smoothing, bf16 autocast
# and channels_last on the CPU too; the data stay in memory (engine.batches).
FAST = {"optimizer": "sgd", "schedule": "onecycle", "lr": 0.1, "batch_size": 128, "momentum": 0.9,
        "weight_decay": 5e-4, "label_smoothing": 0.1, "amp": "bf16"}
FAST_GPU = {**FAST, "lr": 0.2, "batch_size": 512}
# The quickstart's few epochs: random crops slow the fit more than they regularise it (2 epochs on
# 20,000 images, this CPU: MainNet 88.45% with flips only, 84.68% with the paper's crops + flips)
QUICK_VISION = {**FAST, "epochs": 4, "augment": "flip"}
TEXT_FINETUNE = {"lr": 5e-5, "epochs": 1}  # one epoch of joint fine-tuning (Adam)
TEXT_FAST = {**TEXT_FINETUNE, "amp": "bf16"}  # bf16 autocast: 1.5-1.9x faster per epoch on an AMX CPU
# The quickstart's new heads (SideNet, final head) at 1e-3 while the encoder fine-tunes at 5e-5: one epoch at
# 5e-5 leaves a fresh MLP half-trained (seed 2 on this CPU: SideNet 76.8% -> 78.8%, MainNet 88.0% -> 88.1%, MAC
# saving within 0.5 points 28.5% -> 32.7%; seeds 0-2 save 39.1 / 46.9 / 32.7%; 3e-3 gave MainNets 0.5 points lower)
TEXT_QUICK = {**TEXT_FAST, "head_lr": 1e-3}
QUICKSTART_FOREGROUND = 1  # configs of the quickstart trained before the explorer serves; the rest queue

PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("smoke", "ResNet18 on 256 Fashion-MNIST images per split and MiniLM-L6 on 96 sentences, one epoch "
           "(tests; under a minute)", (
               TrainConfig(model="resnet18", dataset="fashion-mnist", epochs=1, limit=256, batch_size=64),
               TrainConfig(model="minilm-l6", dataset="rt-polarity", epochs=1, limit=96, batch_size=32, lr=5e-5),
           ), protocol="none: a functional test on tiny real subsets"),
    Preset("quickstart", "MiniLM-L6 on rt-polarity (joint, 1 epoch; the explorer serves once it is in), then in the "
           "background ResNet18 on Fashion-MNIST (joint, fast recipe, 4 epochs) and two more MiniLM seeds", (
               TrainConfig(model="minilm-l6", dataset="rt-polarity", **TEXT_QUICK),
               TrainConfig(model="resnet18", dataset="fashion-mnist", **QUICK_VISION),
               TrainConfig(model="minilm-l6", dataset="rt-polarity", seeds=[1, 2], **TEXT_QUICK),
           ), protocol="joint training like the paper, but fast recipes: 1 epoch of Adam 5e-5 (bf16 autocast) for "
                       "the encoder, 1e-3 for its new heads; SGD + one-cycle, 4 epochs, flips without crops, for the "
                       "ResNet (the paper: Adam 3e-4, 50 epochs, crops + flips, one learning rate)"),
    Preset("repro-vision-cpu", "Figure 2, Tables 1, 2, 4 and the frozen-vs-joint remark, reduced to ResNet18 on "
           "Fashion-MNIST: with SideNet, without, and a frozen SideNet on each MainNet-only run, 3 seeds", (
               *_grid({"resnet18": {}}, "fashion-mnist", ("joint", "mainnet-only"), seeds=3, epochs=3,
                      max_train=20_000, **{**FAST, "label_smoothing": 0.0}),
               TrainConfig(model="resnet18", dataset="fashion-mnist", mode="frozen", init_from=FROM_MAINNET_ONLY,
                           seeds=_seeds(3), epochs=3, lr=1e-3, batch_size=256, amp="bf16", max_train=20_000),
           ), protocol="the paper's joint protocol (and its frozen variant), reduced: ResNet18 only, from scratch "
                       "(no ImageNet weights offline), 3 epochs of the fast recipe without label smoothing "
                       "(it would change the calibration Table 1 measures) on 20,000 training images, 3 seeds "
                       "(the paper: 4 ResNets, ImageNet weights, Adam 3e-4, 50 epochs, 5 seeds)"),
    Preset("repro-vision-gpu", "Figure 2, Tables 1, 2, 4 on Fashion-MNIST: ResNet18/34/50/152, with and without "
           "SideNet, 5 seeds, 15 epochs of the fast recipe at batch 512", _grid(
               {f"resnet{d}": {} for d in (18, 34, 50, 152)}, "fashion-mnist", ("joint", "mainnet-only"), seeds=5,
               epochs=15, **FAST_GPU),
           protocol="the paper's joint protocol with the fast recipe (15 epochs, batch 512) instead of Adam 3e-4 "
                    "for 50 epochs; from scratch", where="gpu"),
    Preset("repro-text-cpu", "Figure 4, Table 2 (text) and the DistilBERT remark on the stand-ins: MiniLM-L6 on "
           "rt-polarity with and without SideNet@encoder1, 3 seeds", _grid(
               {"minilm-l6": {}}, "rt-polarity", ("joint", "mainnet-only"), seeds=3, **TEXT_FINETUNE),
           protocol="the paper's joint protocol, reduced: 1 epoch of Adam 5e-5 (the paper: 3e-6 for 20 epochs), "
                    "3 seeds, MiniLM-L6 for DistilBERT, rt-polarity for SST-2"),
    Preset("repro-table3", "Table 3 on the stand-ins: MiniLM-L6 with SideNets of 32 or 768 hidden units after "
           "encoders 1, 2, 3 and 5 (the four in one run), 3 seeds", tuple(
               TrainConfig(model="minilm-l6", dataset="rt-polarity", attach=[f"encoder{k}" for k in (1, 2, 3, 5)],
                           sidenet_hidden=h, seeds=_seeds(3), **TEXT_FAST) for h in (32, 768)),
           protocol="the paper's joint protocol, reduced: the four SideNets of one size train together in one run "
                    "(paper 3.3: 'several SideNets can be trained in parallel'; the paper: one run each), 1 epoch of "
                    "Adam 5e-5 in bf16 autocast, 3 seeds (the paper: 5 seeds, 20 epochs of 3e-6, DistilBERT on SST-2)"),
    Preset("paper-vision", "Figure 2 / Tables 1, 2, 4: ResNet18/34/50/152 with ImageNet weights on CIFAR-10, "
           "with and without SideNet, 5 seeds", _grid(PAPER_VISION, "cifar10", ("joint", "mainnet-only")),
           protocol="the paper's: Adam 3e-4, 50 epochs, batch 64, lr /3 after 5 epochs without improvement",
           where="gpu+internet"),
    Preset("paper-frozen", "The paper's ~3% remark: frozen SideNets on the paper-vision mainnet-only runs",
           tuple(TrainConfig(model=m, dataset="cifar10", mode="frozen", init_from=FROM_MAINNET_ONLY, seeds=_seeds(5))
                 for m in PAPER_VISION), protocol="the paper's frozen protocol (run paper-vision first)",
           where="gpu+internet"),
    Preset("paper-text", "Figure 4 / Table 2: DistilBERT, BERT-base, BERT-large on SST-2, with and without "
           "SideNet, 5 seeds", _grid(PAPER_TEXT, "sst2", ("joint", "mainnet-only")),
           protocol="the paper's: Adam 3e-6, 20 epochs, batch 32/16/3", where="gpu+internet"),
    Preset("paper-table3", "Table 3: DistilBERT SideNets of 32 and 768 units after encoders 1, 2, 3, 5 on SST-2",
           tuple(TrainConfig(model="distilbert-base-uncased", dataset="sst2", attach=[f"encoder{k}"],
                             sidenet_hidden=h, seeds=_seeds(5)) for h in (32, 768) for k in (1, 2, 3, 5)),
           protocol="the paper's: Adam 3e-6, 20 epochs, batch 32", where="gpu+internet"),
)}


def preset(name: str) -> list[TrainConfig]:
    """The configs of a preset (fresh copies), each tagged with the preset's name."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return [dataclasses.replace(c, seeds=list(c.seeds), attach=list(c.attach), preset=name)
            for c in PRESETS[name].configs]
