"""engine.costs: parameters and MACs of each path, counted (not hand-derived), and a run's costs."""
from types import SimpleNamespace

import pytest
import torch

from engine.config import TrainConfig
from engine.costs import PARTS, _quadratic_in_length, measure_paths, run_costs
from engine.mainnets import build_mainnet
from engine.model import SideNetModel

SENTENCES = ["bad.", "a gorgeous, witty, seductive movie.", "fine.",
             "the story is far too long, and the jokes fall flat in every single scene of it."]


def _resnet(attach, stem="paper"):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    net = build_mainnet(TrainConfig(model="resnet18", stem=stem).resolved(), 10)
    return SideNetModel(net, attach, 10, x), x


@pytest.mark.parametrize("stem", ["paper", "torchvision"])
def test_path_costs_add_up_for_a_resnet(stem):
    model, x = _resnet([1, 3], stem)
    costs = measure_paths(model, x, 4)
    assert set(costs) == {1, 3} and all(set(c) == set(PARTS) for c in costs.values())
    full = costs[1]["full"]
    assert full["params"] == sum(p.numel() for p in model.mainnet.parameters())
    for k in (1, 3):
        assert costs[k]["trunk"]["params"] + costs[k]["rest"]["params"] == full["params"]
        assert costs[k]["trunk"]["macs"] + costs[k]["rest"]["macs"] == pytest.approx(full["macs"], rel=1e-9)
        assert costs[k]["sidenet"]["params"] == sum(p.numel() for p in model.sidenets[str(k)].parameters())
        side_in = model.sidenets[str(k)].mlp[0]
        assert costs[k]["sidenet"]["macs"] == pytest.approx(side_in.in_features * side_in.out_features, rel=0.01)
    # after layer1: a sliver of the parameters but about a third of the compute (the notes' trap)
    assert costs[1]["trunk"]["params"] / full["params"] < 0.02
    assert 0.25 < costs[1]["trunk"]["macs"] / full["macs"] < 0.4
    assert model.training  # measured in eval mode, handed back as it was


def test_the_papers_stem_costs_four_times_the_macs():
    paper = measure_paths(*_resnet([1], "paper"), 4)[1]["full"]["macs"]
    torchvision = measure_paths(*_resnet([1], "torchvision"), 4)[1]["full"]["macs"]
    assert paper / torchvision == pytest.approx(4.0, rel=0.05)  # layer1..4 on 4x the pixels


def test_run_costs_of_an_image_run_and_a_mainnet_only_one():
    model, x = _resnet([1])
    data = SimpleNamespace(kind="image", test=[(x[i % 4], 0) for i in range(20)])
    costs = run_costs(model, data, torch.utils.data.default_collate, torch.device("cpu"), {1: "layer1"})
    assert set(costs) == {"layer1"}
    assert costs["layer1"] == measure_paths(model, x[[0, 1, 2, 3] * 4], 16)[1]  # per input: 16 inputs counted
    alone, _ = _resnet([])
    costs = run_costs(alone, data, torch.utils.data.default_collate, torch.device("cpu"), {})
    assert set(costs) == {"none"}
    assert costs["none"]["sidenet"] == costs["none"]["rest"] == {"params": 0, "macs": 0.0}
    assert costs["none"]["trunk"] == costs["none"]["full"]


MORE_SENTENCES = SENTENCES + ["not good.", "a film that never quite finds its feet, but the cast is lovely.",
                              "the best thing in it is the music; the rest is noise and glare."]


@pytest.mark.parametrize("sentences", [SENTENCES + SENTENCES[:2], MORE_SENTENCES],
                         ids=["4 lengths: each counted", "6 lengths: the quadratic through 3, checked at a 4th"])
def test_text_macs_are_averaged_per_input_at_its_own_length(sentences):
    torch.manual_seed(0)
    net = build_mainnet(TrainConfig(model="minilm-l6", dataset="rt-polarity").resolved(), 2)
    example, _ = net.collate([(s, 0) for s in SENTENCES])
    model = SideNetModel(net, [1], 2, example)
    data = SimpleNamespace(kind="text", test=[(s, i % 2) for i, s in enumerate(sentences)])
    costs = run_costs(model, data, net.collate, torch.device("cpu"), {1: "layer1"})["layer1"]
    alone = [measure_paths(model, net.collate([item])[0], 1)[1] for item in data.test]  # each unpadded
    for part in PARTS:
        assert costs[part]["macs"] == pytest.approx(sum(c[part]["macs"] for c in alone) / len(alone), rel=1e-12)
        assert costs[part]["params"] == alone[0][part]["params"]
    padded = measure_paths(model, net.collate(data.test)[0], len(data.test))[1]
    assert costs["full"]["macs"] < padded["full"]["macs"]  # not the batch's longest sentence for everyone
    assert costs["trunk"]["macs"] > 0 and costs["rest"]["macs"] > costs["trunk"]["macs"]


def _fake_count(macs_of):
    """A measure_paths stand-in whose every part costs macs_of(n) MACs at length n."""
    return lambda n: {1: {part: {"params": 7, "macs": float(macs_of(n))} for part in PARTS}}


def test_a_cost_that_is_no_quadratic_in_the_length_is_counted_at_every_length():
    lengths = [3, 5, 8, 13, 21, 34]
    exact = _quadratic_in_length(lengths, _fake_count(lambda n: 1e6 + 3e5 * n + 711 * n * n))
    assert exact is not None and exact[21][1]["full"]["macs"] == pytest.approx(1e6 + 3e5 * 21 + 711 * 441, rel=1e-12)
    assert _quadratic_in_length(lengths, _fake_count(lambda n: n ** 3)) is None  # the fourth count disagrees
