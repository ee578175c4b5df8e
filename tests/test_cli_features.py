"""engine.cli.features: `features list|rm` over the feature cache ($SIDENETS_FEATURES)."""
import signal

import numpy as np
import pytest

from engine.cli import main
from engine.features import FeatureCache

from helpers import strict_json


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SIDENETS_FEATURES", str(tmp_path / "features"))
    before = signal.getsignal(signal.SIGTERM)
    yield FeatureCache()
    signal.signal(signal.SIGTERM, before)


def _add_entry(cache, split="test"):
    key = {"model": "resnet18", "weights": "abc", "dataset": "fashion-mnist", "split": split, "prep": {}, "tap": "head"}
    labels = np.arange(4)
    cache.get({"head": key}, labels, lambda taps: {"head": np.ones((4, 3), np.float32)})
    return FeatureCache.entry_id(key)


def test_list_and_remove(cache, capsys):
    assert main(["features", "list"]) == 0
    assert "is empty" in capsys.readouterr().out
    first, second = _add_entry(cache, "test"), _add_entry(cache, "val")
    assert main(["features", "list"]) == 0
    out = capsys.readouterr().out
    assert first in out and second in out and "2 entries" in out and "4 x 3" in out
    assert main(["features", "list", "--json"]) == 0
    listed = strict_json(capsys.readouterr().out)
    assert {e["id"] for e in listed} == {first, second} and all(e["shape"] == [4, 3] for e in listed)
    assert main(["features", "rm", first]) == 0
    assert "removed 1 entry" in capsys.readouterr().out
    assert [e["id"] for e in cache.entries()] == [second]
    assert main(["features", "rm", first]) == 2
    assert f"no feature cache entry '{first}'" in capsys.readouterr().err
    assert main(["features", "rm", "--all"]) == 0
    assert "removed 1 entry" in capsys.readouterr().out and cache.entries() == []


def test_rm_needs_ids_or_all(cache, capsys):
    assert main(["features", "rm"]) == 2
    assert "give entry ids" in capsys.readouterr().err
