"""engine.presets: named lists of TrainConfig that all validate offline, handed out as fresh copies."""
import pytest

from engine.errors import UserError
from engine.presets import PRESETS, preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_resolves_and_names_itself(name):
    configs = preset(name)
    assert len(configs) == len(PRESETS[name].configs) > 0
    for cfg in configs:
        assert cfg.preset == name
        resolved = cfg.resolved()  # validation needs no download: each preset is checked up front
        assert resolved.seeds and resolved.lr > 0


def test_preset_copies_do_not_leak_into_the_registry():
    first = preset("smoke")
    first[0].seeds.append(99)
    first[0].attach.append("layer2")
    again = preset("smoke")[0]
    assert again.seeds == list(PRESETS["smoke"].configs[0].seeds) and 99 not in again.seeds
    assert again.attach == [] and PRESETS["smoke"].configs[0].preset is None


def test_the_smoke_preset_is_small_and_offline():
    image, text = (c.resolved() for c in preset("smoke"))
    assert (image.model, image.dataset, image.epochs) == ("resnet18", "fashion-mnist", 1)
    assert (text.model, text.dataset, text.epochs) == ("minilm-l6", "rt-polarity", 1)
    assert image.limit and text.limit and image.limit <= 512 and text.limit <= 512


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset 'huge'; choose one of: "):
        preset("huge")
