"""engine.datasets.sst2: the paper's text dataset from a GLUE folder (or the hub, which needs internet)."""
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import pytest

from engine.datasets import load_dataset, sst2
from engine.errors import UserError

# the first lines of GLUE SST-2's train.tsv and dev.tsv (tokenised, lower-cased, trailing space)
SST_TRAIN = "\n".join([
    "sentence\tlabel",
    "hide new secretions from the parental units \t0",
    "contains no wit , only labored gags \t0",
    "that loves its characters and communicates something rather beautiful about human nature \t1",
    "remains utterly satisfied to remain the same throughout \t0",
    "on the worst revenge-of-the-nerds clich\u00e9s the filmmakers could dredge up \t0",
    "that 's far too tragic to merit such superficial treatment \t0",
    "demonstrates that the director of such hollywood blockbusters as patriot games can still turn out a small , "
    "personal film with an emotional wallop . \t1",
    "of saucy \t1",
    "a depressed fifteen-year-old 's suicidal poetry \t0",
    "are more deeply thought through than in most ` right-thinking ' films \t1",
]) + "\n"
SST_DEV = "\n".join([
    "sentence\tlabel",
    "it 's a charming and often affecting journey . \t1",
    "unflinchingly bleak and desperate \t0",
    "allows us to hope that nolan is poised to embark a major career as a commercial yet inventive filmmaker . \t1",
    "the acting , costumes , music , cinematography and sound are all astounding given the production 's "
    "austere locales . \t1",
]) + "\n"
OFFLINE = "sst2 needs the GLUE SST-2 folder (set SST2_DIR) or internet; offline, use --dataset rt-polarity"


def write_sst(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.tsv").write_text(SST_TRAIN, encoding="utf-8")
    (folder / "dev.tsv").write_text(SST_DEV, encoding="utf-8")
    return folder


def test_from_a_glue_tsv_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("SST2_DIR", str(write_sst(tmp_path / "glue" / "SST-2")))
    d = load_dataset("sst2", data_dir=tmp_path / "empty")
    assert (d.name, d.kind, d.num_classes, d.class_names) == ("sst2", "text", 2, ["negative", "positive"])
    # tiny folder: the 872 carve is capped at half of train; dev is the test split
    assert (len(d.train), len(d.val), len(d.test)) == (5, 5, 4)
    assert d.test[0] == ("it 's a charming and often affecting journey .", 1)
    assert d.test.labels.tolist() == [1, 0, 1, 1]
    assert sorted(d.train.texts + d.val.texts) == sorted(
        line.split("\t")[0].strip() for line in SST_TRAIN.splitlines()[1:])
    assert "are more deeply thought through than in most ` right-thinking ' films" in d.train.texts + d.val.texts
    assert d.extra["source"] == str(tmp_path / "glue" / "SST-2")
    # without SST2_DIR, <data_dir>/sst2 is used
    monkeypatch.delenv("SST2_DIR")
    write_sst(tmp_path / "d" / "sst2")
    e = load_dataset("sst2", data_dir=tmp_path / "d", limit=2)
    assert (len(e.train), len(e.val), len(e.test)) == (2, 2, 2) and e.test.texts == d.test.texts[:2]
    # full size: 872 carved from GLUE train for val
    texts = [f"sentence {i}" for i in range(2000)]
    f = sst2.from_glue((texts, [i % 2 for i in range(2000)]), (["x"], [0]))
    assert (len(f.train), len(f.val), len(f.test)) == (1128, 872, 1)


def test_offline_is_a_user_error(monkeypatch, tmp_path):
    monkeypatch.delenv("SST2_DIR", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "datasets" else real_find_spec(name, *a))
    with pytest.raises(UserError) as e:
        load_dataset("sst2", data_dir=tmp_path)
    assert str(e.value) == OFFLINE
    # `datasets` importable but the hub unreachable
    monkeypatch.setattr(importlib.util, "find_spec", real_find_spec)
    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)

    def offline(*a, **k):
        raise ConnectionError("offline")

    fake.load_dataset = offline
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(UserError) as e:
        load_dataset("sst2", data_dir=tmp_path)
    assert str(e.value) == OFFLINE


def test_the_hub_copy_when_it_is_reachable(monkeypatch, tmp_path):
    monkeypatch.delenv("SST2_DIR", raising=False)
    fake = types.ModuleType("datasets")
    fake.__spec__ = importlib.machinery.ModuleSpec("datasets", None)
    rows = [line.split("\t") for line in SST_TRAIN.splitlines()[1:]]
    dev = [line.split("\t") for line in SST_DEV.splitlines()[1:]]
    fake.load_dataset = lambda *a: {"train": {"sentence": [r[0] for r in rows], "label": [int(r[1]) for r in rows]},
                                    "validation": {"sentence": [r[0] for r in dev], "label": [int(r[1]) for r in dev]}}
    monkeypatch.setitem(sys.modules, "datasets", fake)
    d = load_dataset("sst2", data_dir=tmp_path)
    assert (len(d.train), len(d.val), len(d.test)) == (5, 5, 4)
    assert d.extra["source"].startswith("datasets.load_dataset")
    assert d.test.texts[1] == "unflinchingly bleak and desperate"


@pytest.mark.parametrize("train, message", [
    ("text\tlabel\nfoo\t1\n", "expected a header row with 'sentence' and 'label' columns"),
    ("sentence\tlabel\nfoo\tpositive\n", ":2: expected a sentence and a 0/1 label"),
    ("sentence\tlabel\nfoo\t2\n", ":2: label must be 0 or 1, got 2"),
])
def test_bad_tsv_is_a_user_error(tmp_path, train, message):
    bad = tmp_path / "sst2"
    bad.mkdir()
    (bad / "train.tsv").write_text(train)
    (bad / "dev.tsv").write_text(SST_DEV)
    with pytest.raises(UserError, match=message):
        load_dataset("sst2", data_dir=tmp_path)
