"""engine.metrics' reliability bins and ECE against a brute-force per-sample loop."""
import numpy as np
import pytest

from engine import metrics as M

from helpers import make_logits

SEEDS = [0, 1, 2, 3, 4]

def brute_ece(conf, correct, edges):
    """Per-sample loop binning: [lo, hi) except the last bin [lo, hi]; below edges[0] -> bin 0."""
    b = len(edges) - 1
    sums = [[0, 0.0, 0.0] for _ in range(b)]
    for c, ok in zip(conf, correct):
        j = 0
        for k in range(b):
            if edges[k] <= c < edges[k + 1] or (k == b - 1 and c == edges[-1]):
                j = k
        sums[j][0] += 1
        sums[j][1] += c
        sums[j][2] += float(ok)
    return sum(abs(a - s) for _, s, a in sums) / len(conf), [s[0] for s in sums]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("kw", [{}, {"n_bins": 10}, {"n_bins": 3}, {"paper": True}])
def test_ece_matches_brute_force(seed, kw):
    side, _, labels = make_logits(seed, n=300)
    side[:5] = [1000] + [0] * 9
    conf, pred = M.confidence_and_prediction(side)
    conf[5:8] = [0.3, 0.5, 0.05]  # exactly on edges, and below the paper's first edge
    rel = M.reliability(conf, pred == labels, **kw)
    ece, counts = brute_ece(conf, pred == labels, rel.edges)
    assert rel.ece == pytest.approx(ece, abs=1e-12)
    assert rel.count.tolist() == counts and rel.count.sum() == rel.n == 300
    filled = rel.count > 0
    weights = rel.count[filled] / rel.n
    assert rel.ece == pytest.approx(np.sum(weights * np.abs(rel.accuracy - rel.confidence)[filled]))


def test_bins_edges_and_closed_last_bin():
    rel = M.reliability([0.0, 0.3, 0.5, 0.9999, 1.0], [1, 1, 0, 1, 1], n_bins=10)
    assert len(rel.edges) == 11 and len(rel.count) == 10  # no phantom bin for conf == 1.0
    assert rel.count.tolist() == [1, 0, 0, 1, 0, 1, 0, 0, 0, 2]
    paper = M.reliability([0.05, 0.2, 0.3, 0.95, 1.0], [1, 0, 1, 1, 0], paper=True)
    np.testing.assert_array_equal(paper.edges, [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert paper.count.tolist() == [2, 1, 0, 0, 0, 0, 0, 2]  # 0.05 is folded into the first bin
    assert len(M.reliability([0.5], [1]).count) == M.DEFAULT_BINS
    with pytest.raises(ValueError, match="do not pass n_bins"):
        M.reliability([0.5], [1], n_bins=5, paper=True)
    with pytest.raises(ValueError, match=r"conf in \[0, 1\]"):
        M.reliability([1.5], [1])
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        M.reliability([0.5], [1], n_bins=0)


def test_empty_bins_are_nan_and_contribute_nothing():
    conf = np.array([0.91, 0.93, 0.95, 0.97])
    rel = M.reliability(conf, [1, 1, 1, 0], n_bins=10)
    assert rel.count.tolist() == [0] * 9 + [4]
    assert np.all(np.isnan(rel.accuracy[:9])) and np.all(np.isnan(rel.confidence[:9]))
    assert rel.accuracy[9] == 0.75 and rel.confidence[9] == pytest.approx(0.94)
    assert rel.ece == pytest.approx(0.19)


def test_calibration_from_logits():
    side, _, labels = make_logits(2)
    conf, pred = M.confidence_and_prediction(side)
    got, want = M.calibration(side, labels, paper=True), M.reliability(conf, pred == labels, paper=True)
    assert got.ece == want.ece and np.array_equal(got.count, want.count)
