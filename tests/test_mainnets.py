"""The MainNet registry (engine.mainnets): every registered MainNet, split after any block, equals its
unsplit library forward exactly; the registry answers without building; the config flows whole."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from engine import mainnets
from engine.config import TrainConfig
from engine.errors import UserError
from engine.mainnets import attach_names, build_mainnet
from engine.sidenet import SideNet

from helpers import REPO

SENTENCES = [("a gorgeous, witty, seductive movie.", 1),
             ("the story is far too long, and the jokes fall flat in every single scene of it.", 0),
             ("bad.", 0)]
QUICK = {"resnet18", "minilm-l6"}  # the smoke preset's models; the others build and run for many seconds


def _marks(name: str) -> list:
    spec = mainnets.get(name)
    if spec.kind == "text" and spec.pretrained == "online":
        return [pytest.mark.skip(reason=f"{name}: its config and tokenizer come from the Hugging Face hub (internet)")]
    if name == "mpnet-base" and not (REPO / "data" / "models" / "all-mpnet-base-v2" / "model.safetensors").exists():
        return [pytest.mark.skip(reason="mpnet-base is not installed here: `make mpnet` (a 405 MB download)")]
    return [] if name in QUICK else [pytest.mark.slow]


ALL = [pytest.param(name, marks=_marks(name)) for name in mainnets.names()]


def config_for(name: str, **kw) -> TrainConfig:
    spec = mainnets.get(name)
    dataset = "fashion-mnist" if spec.kind == "image" else "rt-polarity"
    return TrainConfig(model=name, dataset=dataset, **kw).resolved()


def example_input(net, name: str, classes: int):
    spec = mainnets.get(name)
    if spec.kind == "text":
        inputs, _ = net.collate(SENTENCES)
        assert inputs["attention_mask"].min() == 0  # the batch is really padded
        return inputs
    size = spec.image_size or 32
    return torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", ALL)
def test_trunk_then_rest_is_the_unsplit_forward(name):
    torch.manual_seed(0)
    net = build_mainnet(config_for(name), 10).eval()
    x = example_input(net, name, 10)
    spec = mainnets.get(name)
    assert net.attach_names() == attach_names(name) and len(net.attach_names()) == net.num_blocks - 1
    assert net.attach_prefix == spec.attach_prefix and net.default_attach == spec.default_attach
    with torch.no_grad():
        full = net(x)
        assert full.shape == (3, 10)
        for k in range(1, net.num_blocks):
            assert torch.equal(net.rest(net.trunk(x, k), k), full), f"{name} differs when split after block {k}"
        last = net.blocks(net.trunk(x, 1), 1, net.num_blocks)
        assert torch.equal(net.head(last), full) and torch.equal(net.classifier(net.pool(last)), full)
        main, taps = net.forward_taps(x, [net.num_blocks - 1, 1])
        assert torch.equal(main, full) and set(taps) == {1, net.num_blocks - 1}
        assert torch.equal(net.side_features(taps[1]), net.side_features(net.trunk(x, 1)))
        none, only = net.forward_taps(x, [1], stop_after_last=True)
        assert none is None and torch.equal(net.side_features(only[1]), net.side_features(taps[1]))
        feats = net.features(x, [1])  # what the feature cache stores: one pass, SideNet taps and the head's input
        assert torch.equal(feats["side1"], net.side_features(taps[1])) and torch.equal(feats["head"], net.pool(last))
    assert net.side_in_features(1, x) == feats["side1"].shape[1]
    head_params = {id(p) for p in net.classifier.parameters()}
    assert head_params < {id(p) for p in net.parameters()}  # the classifier lives inside the MainNet...
    assert sum(m is net.classifier for _, m in net.named_modules(remove_duplicate=False)) == 1  # ...once
    assert isinstance(net.classifier, SideNet)  # the paper's final head: shaped like a SideNet


@pytest.mark.parametrize("name", ALL)
def test_the_config_flows_whole_into_the_mainnet(name):
    spec = mainnets.get(name)
    extra = {"max_length": 12} if spec.kind == "text" else {}
    cfg = config_for(name, sidenet_hidden=7, sidenet_order="linear-relu-bn", pretrained=False, **extra)
    net = build_mainnet(cfg, 3)
    layers = [type(m).__name__ for m in net.classifier.mlp]
    assert layers == ["Linear", "ReLU", "BatchNorm1d", "Linear"] and net.classifier.mlp[0].out_features == 7
    assert net.classifier.mlp[-1].out_features == 3
    if spec.stems:
        assert net.stem == cfg.stem == spec.stems[0]
    if spec.kind == "text":
        assert net.pooling == cfg.pooling and net.max_length == 12
        inputs, _ = net.collate([("word " * 100, 1)])
        assert inputs["input_ids"].shape == (1, 12)  # --max-length is not ignored


def test_registry_lists_and_refuses():
    names = mainnets.names()
    assert set(mainnets.names("image")) | set(mainnets.names("text")) == set(names)
    assert {"resnet18", "efficientnet-lite0", "minilm-l6"} <= set(names)
    assert all(mainnets.get(n).name == n for n in names)
    for name in ("resnet99", "efficientnet-b7", "./my-model", "/abs/path", "plain"):
        with pytest.raises(UserError, match=f"unknown model '{name}'"):
            mainnets.get(name)
    hub = mainnets.get("someone/some-encoder")  # any other id with a "/" is a Hugging Face encoder
    assert (hub.kind, hub.pretrained, hub.attach_prefix, hub.num_blocks) == ("text", "online", "encoder", None)
    with pytest.raises(ValueError, match="registered twice"):
        mainnets.register(mainnets.get("resnet18"))


def test_attach_names_without_building():
    assert attach_names("resnet50") == ["layer1", "layer2", "layer3"]
    assert attach_names("efficientnet-lite0") == [f"block{k}" for k in range(1, 16)]
    assert attach_names("minilm-l6") == [f"encoder{k}" for k in range(1, 6)]  # its config from the wheel


def test_attach_index():
    net = build_mainnet(config_for("resnet18"), 10)
    assert net.attach_index("layer2") == 2 == net.attach_index(2) == net.attach_index("2")
    for bad in ("layer4", "layer0", 4, "encoder1", "x"):
        with pytest.raises(UserError, match="is not valid for resnet18; choose one of: layer1, layer2, layer3"):
            net.attach_index(bad)


def test_build_takes_a_resolved_config():
    cfg = config_for("resnet18")
    assert isinstance(build_mainnet(dataclasses.replace(cfg, stem="torchvision"), 4).net.maxpool, torch.nn.MaxPool2d)
