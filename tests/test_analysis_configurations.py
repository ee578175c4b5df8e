"""engine.analysis.configurations: runs grouped into configurations (seeds are replicates)."""
from engine.analysis.configurations import Configuration, datasets, group_runs, natural, options, select

from helpers import run_dict


def test_group_runs_seeds_attach_points_and_mainnet_only():
    runs = [run_dict("a0", 0), run_dict("a1", 1), run_dict("b0", 0, model="resnet152"),
            run_dict("m0", 0, attach=(), mode="mainnet-only"), run_dict("m1", 1, attach=(), mode="mainnet-only"),
            run_dict("two", 0, model="resnet34", attach=("layer1", "layer2")),
            run_dict("h", 0, hidden=768), run_dict("bad", 2, status="failed"),
            run_dict("t", 0, model="minilm-l6", attach=("encoder1",), dataset="rt-polarity")]
    configs = group_runs(runs)
    keys = [(c.dataset, c.model, c.attach, c.sidenet_hidden, c.run_ids) for c in configs]
    assert keys == [
        ("fashion-mnist", "resnet18", None, None, ("m0", "m1")),  # natural order, MainNet-only first per model
        ("fashion-mnist", "resnet18", "layer1", 32, ("a0", "a1")),
        ("fashion-mnist", "resnet18", "layer1", 768, ("h",)),
        ("fashion-mnist", "resnet34", "layer1", 32, ("two",)),
        ("fashion-mnist", "resnet34", "layer2", 32, ("two",)),
        ("fashion-mnist", "resnet152", "layer1", 32, ("b0",)),
        ("rt-polarity", "minilm-l6", "encoder1", 32, ("t",)),
    ]
    assert all("bad" not in c.run_ids for c in configs)  # a failed run is never part of a configuration
    assert datasets(configs) == ["fashion-mnist", "rt-polarity"]
    assert options(configs, "model") == ["minilm-l6", "resnet18", "resnet34", "resnet152"]
    assert options(configs, "attach") == ["encoder1", "layer1", "layer2"]  # None (MainNet only) left out
    assert len({c.label for c in configs if c.dataset == "fashion-mnist"}) == 6  # labels unique within a dataset
    sel = select(configs, dataset="fashion-mnist", models=["resnet18"], hidden=[32])
    assert [c.run_ids for c in sel] == [("m0", "m1"), ("a0", "a1")]  # MainNet-only kept: hidden does not apply
    assert [c.run_ids for c in select(configs, sidenet=False)] == [("m0", "m1")]
    assert select(configs, attach=["layer2"], sidenet=True)[0].run_ids == ("two",)
    assert len(select(configs)) == len(configs)


def test_seeds_are_ordered_by_seed_and_unseeded_runs_last():
    configs = group_runs([run_dict("z", 2), run_dict("y", None), run_dict("x", 0), run_dict("w", 1)])
    assert [c.run_ids for c in configs] == [("x", "w", "z", "y")]


def test_runs_with_other_settings_are_other_configurations_named_by_what_differs():
    runs = [run_dict("p0", 0, config={"stem": "paper", "epochs": 1, "seeds": [0], "device": "cpu"}),
            run_dict("p1", 1, config={"stem": "paper", "epochs": 1, "seeds": [1], "device": "cuda"}),  # a replicate
            run_dict("tv", 0, config={"stem": "torchvision", "epochs": 1}),
            run_dict("e3", 0, config={"stem": "paper", "epochs": 3}),
            run_dict("alone", 0, attach=(), mode="mainnet-only", config={"stem": "paper", "epochs": 3})]
    configs = group_runs(runs)
    by_runs = {c.run_ids: c for c in configs}
    assert sorted(by_runs) == [("alone",), ("e3",), ("p0", "p1"), ("tv",)]
    assert by_runs[("p0", "p1")].variant == "epochs 1, stem paper"
    assert by_runs[("tv",)].variant == "epochs 1, stem torchvision"
    assert by_runs[("e3",)].label == "resnet18 + SideNet@layer1 (h32, epochs 3, stem paper)"
    assert by_runs[("alone",)].variant == ""  # no sibling MainNet-only configuration to tell it from
    assert len({c.label for c in configs}) == len({c.id for c in configs}) == len({c.key for c in configs}) == 4
    assert by_runs[("p0", "p1")].recipe != by_runs[("e3",)].recipe


def test_labels_ids_and_keys():
    frozen = Configuration("d", "resnet18", "frozen", "layer2", 768, "linear-relu-bn", run_ids=("a",))
    assert frozen.label == "resnet18 + SideNet@layer2 (h768, linear-relu-bn, frozen)"
    alone = Configuration("d", "resnet18", "mainnet-only", None, None, None, "stem torchvision", '{"stem": "tv"}')
    assert alone.label == "resnet18 (MainNet only, stem torchvision)" and not alone.has_sidenet
    assert alone.id.startswith("d|resnet18|mainnet-only||||")
    assert alone.id == Configuration(*alone.key[:6], recipe=alone.recipe).id  # stable
    assert alone.id != Configuration(*alone.key[:6], recipe="{}").id
    # run_ids do not take part in equality: the same configuration with more seeds is the same key
    assert frozen == Configuration("d", "resnet18", "frozen", "layer2", 768, "linear-relu-bn", run_ids=("a", "b"))


def test_natural_order():
    assert sorted(["resnet152", "resnet18", "resnet50", None, "resnet34"], key=natural) == \
        [None, "resnet18", "resnet34", "resnet50", "resnet152"]
    assert sorted(["encoder10", "encoder2", "block3"], key=natural) == ["block3", "encoder2", "encoder10"]
