"""engine.datasets.rt_polarity on the real file (data/rt-polarity, `make setup`)."""
import pytest

from engine.datasets import load_dataset, rt_polarity
from engine.errors import UserError
from engine.paths import data_dir


@pytest.fixture
def path():
    p = data_dir() / "rt-polarity" / rt_polarity.FILE
    if not p.exists():
        pytest.skip(f"{p} missing: run `bash scripts/fetch-data.sh` (make setup) first")
    return p


def test_counts_and_splits(path):
    texts, labels = rt_polarity.read_sentences(str(path))
    assert len(texts) == 9_565 and sum(labels) == 4_772 and labels.count(0) == 4_793
    assert all(t == t.strip() and t for t in texts)
    d = load_dataset("rt-polarity")
    assert (d.name, d.kind, d.num_classes, d.class_names) == ("rt-polarity", "text", 2, ["negative", "positive"])
    assert (len(d.train), len(d.val), len(d.test)) == (6_885, 868, 1_812)
    assert sum(len(s) for s in (d.train, d.val, d.test)) == 9_565
    assert int(d.train.labels.sum() + d.val.labels.sum() + d.test.labels.sum()) == 4_772
    text, y = d.train[0]
    assert isinstance(text, str) and y in (0, 1)
    assert d.raw_test(0) == d.test[0][0] and d.preprocess("  a fine film \r\n") == "a fine film"
    # the split is fixed (seed only moves the `limit` subset of train)
    e = load_dataset("rt-polarity", seed=5)
    assert e.test.texts == d.test.texts and e.val.texts == d.val.texts and e.train.texts == d.train.texts
    # balanced enough in every split
    for s in (d.train, d.val, d.test):
        assert 0.45 < s.labels.float().mean().item() < 0.55
    lim = load_dataset("rt-polarity", limit=50, seed=3)
    assert (len(lim.train), len(lim.val), len(lim.test)) == (50, 50, 50)
    assert lim.test.texts == d.test.texts[:50] and set(lim.train.texts) <= set(d.train.texts)


def test_missing_or_damaged_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="make setup"):
        load_dataset("rt-polarity", data_dir=tmp_path)
    folder = tmp_path / "rt-polarity"
    folder.mkdir()
    (folder / rt_polarity.FILE).write_text("1\t2.5\ta fine film\r\n\r\n2\tnot-a-number\tbroken\r\n", encoding="utf-8")
    with pytest.raises(UserError, match=r":3: expected 'id<TAB>rating<TAB>text'"):
        load_dataset("rt-polarity", data_dir=tmp_path)


def test_neutral_sentences_are_dropped(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text("1\t2.5\tgreat\r\n2\t-0.8\tmeh\r\n3\t0.81\tfine\r\n4\t-3\tawful\r\n5\t3\t \r\n", encoding="utf-8")
    assert rt_polarity.read_sentences(str(path)) == (("great", "fine", "awful"), (1, 1, 0))
