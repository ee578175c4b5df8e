"""engine.config: TrainConfig validation at the boundary (TOML, job specs, the CLI), defaults filled
from the MainNet's registry entry and the paper, TOML files."""
import dataclasses

import pytest

from engine.config import PAPER_DEFAULTS, TrainConfig, load_toml
from engine.errors import UserError


def resolve(**kw) -> TrainConfig:
    return TrainConfig(**kw).resolved()


def test_defaults_come_from_the_paper_and_the_registry():
    image = resolve(model="resnet18", dataset="fashion-mnist", seeds=[3, 1, 3])
    assert (image.lr, image.epochs, image.batch_size) == (3e-4, 50, 64) == tuple(
        PAPER_DEFAULTS["image"][k] for k in ("lr", "epochs", "batch_size"))
    assert image.stem == "paper" and image.pooling is None and image.pretrained is False and image.seeds == [3, 1]
    text = resolve(model="minilm-l6", dataset="rt-polarity")
    assert (text.lr, text.epochs, text.batch_size) == (3e-6, 20, 32)
    assert text.stem is None and text.pooling == "mean" and text.pretrained is True
    assert resolve(model="distilbert-base-uncased", dataset="sst2").pooling == "cls"  # the paper's [CLS]
    assert resolve(model="efficientnet-lite0").pretrained is True
    given = resolve(model="resnet50", lr=0.01, epochs=3, batch_size=8, stem="torchvision")
    assert (given.lr, given.epochs, given.batch_size, given.stem) == (0.01, 3, 8, "torchvision")
    assert given.resolved() == given  # resolving twice changes nothing


def test_resolved_is_a_copy():
    cfg = TrainConfig(seeds=[0, 0])
    out = cfg.resolved()
    assert cfg.lr is None and cfg.seeds == [0, 0] and out is not cfg and out.seeds == [0]


def test_dict_round_trip_and_unknown_keys():
    cfg = resolve(model="resnet34", attach=["layer2"], mode="frozen", init_from="some-run", seeds=[1, 2])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(UserError, match=r"job 7: unknown key\(s\) learning_rate, no_such_field"):
        TrainConfig.from_dict({"learning_rate": 0.1, "no_such_field": 1}, where="job 7")
    with pytest.raises(UserError, match="expected a table of TrainConfig fields, got list"):
        TrainConfig.from_dict([1, 2])


@pytest.mark.parametrize("changes, message", [
    ({"epochs": "5"}, "epochs must be an integer, got '5'"),
    ({"epochs": 2.0}, "epochs must be an integer"),
    ({"batch_size": True}, "batch_size must be an integer, got True"),
    ({"sidenet_hidden": 0}, "sidenet_hidden must be between 1 and 65536, got 0"),
    ({"patience": 0}, "patience must be between 1 and"),
    ({"limit": 1}, "limit must be at least 2, got 1"),
    ({"lr": float("nan")}, "lr must be a finite number, got nan"),
    ({"lr": float("inf")}, "lr must be a finite number"),
    ({"lr": -0.001}, r"lr must be in \(0.0, 10.0\], got -0.001"),
    ({"lr": 0.0}, r"lr must be in \(0.0, 10.0\], got 0.0"),
    ({"lr": "3e-4"}, "lr must be a finite number, got '3e-4'"),
    ({"head_lr": 0.0}, r"head_lr must be in \(0.0, 10.0\], got 0.0"),
    ({"head_lr": float("nan")}, "head_lr must be a finite number, got nan"),
    ({"head_lr": "fast"}, "head_lr must be a finite number, got 'fast'"),
    ({"alpha": -1.0}, r"alpha must be in \[0.0, "),
    ({"momentum": 1.5}, r"momentum must be in \[0.0, 1.0\]"),
    ({"label_smoothing": None}, "label_smoothing must be a finite number, got None"),
    ({"seeds": []}, "seeds must be a list of 1 to 50 integers"),
    ({"seeds": [1.5]}, "seeds must be a list"),
    ({"seeds": [True]}, "seeds must be a list"),
    ({"seeds": [-1]}, "seeds must be a list"),
    ({"seeds": 3}, "seeds must be a list"),
    ({"attach": "layer1"}, "attach must be a list of attach point names, got 'layer1'"),
    ({"pretrained": "yes"}, "pretrained must be true or false, got 'yes'"),
    ({"init_from": 7}, "init_from must be a string, got 7"),
    ({"model": ""}, "model must be a non-empty string"),
    ({"dataset": None}, "dataset must be a non-empty string"),
    ({"device": "tpu"}, "unknown device 'tpu'"),
    ({"mode": "distill"}, "unknown mode 'distill'; choose one of: joint, head, frozen, mainnet-only"),
    ({"optimizer": "lion"}, "unknown optimizer 'lion'"),
    ({"schedule": "cosine"}, "unknown schedule 'cosine'"),
    ({"amp": "fp8"}, "unknown amp 'fp8'"),
    ({"sidenet_order": "bn-first"}, "unknown sidenet_order 'bn-first'"),
    ({"augment": "mixup"}, "unknown augment .mixup.; choose one of: crop-flip, flip, none"),
])
def test_bad_values_are_user_errors_naming_the_field(changes, message):
    with pytest.raises(UserError, match=message):
        dataclasses.replace(TrainConfig(), **changes).resolved()


@pytest.mark.parametrize("kw, message", [
    ({"model": "resnet99"}, "unknown model 'resnet99'"),
    ({"dataset": "mnist-ish"}, "unknown dataset 'mnist-ish'"),
    ({"model": "minilm-l6", "dataset": "fashion-mnist"}, "model 'minilm-l6' takes text inputs but dataset"),
    ({"mode": "frozen"}, "pass --init-from RUN"),
    ({"mode": "head", "init_from": "r"}, "--init-from does not apply to head mode"),
    ({"mode": "head"}, "head mode freezes a pretrained backbone, and resnet18 is set to --no-pretrained"),
    ({"mode": "head", "model": "efficientnet-lite0", "pretrained": False},
     "efficientnet-lite0 is set to --no-pretrained"),
    ({"attach": ["layer4"]}, "attach point 'layer4' is not valid for resnet18; choose one of: layer1, layer2, layer3"),
    ({"mode": "mainnet-only", "attach": ["layer1"]}, "mainnet-only mode has no SideNet: drop --attach"),
    ({"stem": "tiny"}, "unknown stem 'tiny' for resnet18; choose one of: paper, torchvision"),
    ({"model": "minilm-l6", "dataset": "rt-polarity", "stem": "paper"}, "stem does not apply to minilm-l6"),
    ({"model": "minilm-l6", "dataset": "rt-polarity", "pooling": "max"}, "unknown pooling 'max' for minilm-l6"),
    ({"pooling": "cls"}, "pooling does not apply to resnet18"),
])
def test_inconsistent_configs_are_user_errors(kw, message):
    with pytest.raises(UserError, match=message):
        resolve(**kw)


def test_head_mode_with_pretrained_weights_is_valid():
    assert resolve(model="efficientnet-lite0", mode="head").cached
    assert resolve(model="resnet18", mode="head", pretrained=True).pretrained  # ImageNet weights (online)
    assert not resolve(model="resnet18").cached


# ------------------------------------------------------------------------------ TOML
def test_toml_shared_keys_and_runs(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('dataset = "fashion-mnist"\nepochs = 2\nseeds = [0, 1]\n\n'
                    '[[runs]]\nmodel = "resnet18"\n\n[[runs]]\nmodel = "resnet34"\nepochs = 3\nattach = ["layer2"]\n')
    a, b = load_toml(path)
    assert (a.model, a.epochs, a.seeds, a.attach) == ("resnet18", 2, [0, 1], [])
    assert (b.model, b.epochs, b.attach) == ("resnet34", 3, ["layer2"])
    path.write_text('model = "resnet50"\n')
    (only,) = load_toml(path)
    assert only.model == "resnet50" and only.resolved().stem == "paper"


@pytest.mark.parametrize("text, message", [
    ("epochs = '5'\n", "epochs must be an integer, got '5'"),  # validated when resolved (below)
    ("lr = nan\n", "lr must be a finite number, got nan"),
    ("lr = -1e-3\n", r"lr must be in \(0.0"),
    ("seeds = [0.5]\n", "seeds must be a list"),
    ("pretrained = 'yes'\n", "pretrained must be true or false"),
    ("attach = 'layer1'\n", "attach must be a list"),
])
def test_bad_types_from_toml(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    (cfg,) = load_toml(path)
    with pytest.raises(UserError, match=message):
        cfg.resolved()


def test_unreadable_toml_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_toml(tmp_path / "none.toml")
    with pytest.raises(UserError, match="is a folder"):
        load_toml(tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_text("epochs = = 3\n")
    with pytest.raises(UserError, match="is not valid TOML"):
        load_toml(bad)
    bad.write_bytes(b"model = '\xff\xfe'\n")
    with pytest.raises(UserError, match="cannot be read"):
        load_toml(bad)
    bad.write_text("learning_rate = 0.1\n")
    with pytest.raises(UserError, match=r"unknown key\(s\) learning_rate"):
        load_toml(bad)
    bad.write_text("runs = 3\n")
    with pytest.raises(UserError, match=r"\[\[runs\]\] must be a list of tables"):
        load_toml(bad)
    bad.write_text("runs = [1]\n")
    with pytest.raises(UserError, match="expected a table of TrainConfig fields, got int"):
        load_toml(bad)
