"""engine.jobs.progress: seeds and progress in the words the UI and the CLI show (no I/O)."""
import pytest

from engine.errors import UserError
from engine.jobs.progress import parse_seeds, progress_fraction, progress_text


def test_parse_seeds():
    assert parse_seeds("0 1 2") == [0, 1, 2]
    assert parse_seeds("3, 1,1") == [3, 1]
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    for bad, message in (("", "give at least one seed"), ("a", "seeds must be integers"),
                         ("1 x", "seeds must be integers like '0 1 2' or '0-4', got 'x'"),
                         (" ".join(map(str, range(51))), "at most 50 seeds per job")):
        with pytest.raises(UserError, match=message):
            parse_seeds(bad)


def test_progress_fraction_and_text():
    assert progress_fraction(None) == 0.0 and progress_text(None) == "waiting to start"
    p = {"phase": "training", "seed_index": 1, "n_seeds": 2, "epoch": 2, "epochs": 4, "step": 5, "steps": 10,
         "loss": 0.5, "eta_s": 12.0, "seed": 7}
    assert progress_fraction(p) == pytest.approx((1 + (1 + 0.5) / 4) / 2)
    assert progress_fraction({"phase": "finished"}) == 1.0 and progress_text({"phase": "finished"}) == "finished"
    assert progress_fraction({**p, "seed_index": 5}) == 1.0  # never above 1
    text = progress_text(p)
    assert text == "run 2/2 (seed 7) · epoch 2/4 · step 5/10 · loss 0.5000 · about 12 s left in this epoch"
    assert progress_text({"phase": "loading", "n_seeds": 1}) == "loading data and model"
    assert progress_text({"phase": "training"}) == "starting"
