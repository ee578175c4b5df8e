"""engine.runtime.cascade: the real early exit against the cached-logit computation, on the real smoke
runs (CPU); a fresh Cascade per test (nothing shared is changed by a test)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from engine import metrics
from engine.analysis.runs import prepare_one
from engine.errors import UserError
from engine.metrics import EXIT_RULES, ThetaCurve
from engine.metrics import confidence_and_prediction as np_confidence
from engine.runtime.cascade import (
    Cascade,
    auto_theta_for_run,
    concat_states,
    confidence,
    confidence_and_prediction,
    load_cascade,
)
from engine.runtime.device import to_device

# A mismatch with the cached logits is accepted only where the two computations are allowed to
# differ in the last float bits: a SideNet score within CONF_TOL of theta (the exit can flip)
# or a top-2 logit gap within GAP_TOL (argmax can flip). The cached logits come from batches of
# 256 (padded to the batch's longest sentence for text); bs=1 / regrouped batches compute the same
# numbers in another order. In practice there are none; the tolerance keeps the test honest, not flaky.
CONF_TOL, GAP_TOL = 1e-5, 1e-4
EVAL_BATCH = 256  # engine.train.evaluate's batches

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Cached:
    """A run's cached test logits (what the cascade must reproduce)."""

    labels: np.ndarray
    side_logits: np.ndarray
    main_logits: np.ndarray
    rule: str = "max-prob"

    @property
    def score(self) -> np.ndarray:
        return metrics.exit_score(self.side_logits, self.rule)

    def curve(self) -> ThetaCurve:
        return ThetaCurve.from_logits(self.side_logits, self.main_logits, self.labels, exit_rule=self.rule)

    def subset(self, order) -> Cached:
        return Cached(self.labels[order], self.side_logits[order], self.main_logits[order], self.rule)


@pytest.fixture
def loaded(smoke_runs):
    """loaded(kind, rule) -> (a fresh Cascade at theta 0.5, DatasetSplits, collate, Cached)."""
    store, runs = smoke_runs

    def load(kind: str, rule: str = "max-prob"):
        cascade, data, collate, run = load_cascade(store, runs[kind], theta=0.5, exit_rule=rule)
        logits = store.logits(runs[kind])
        cached = Cached(logits["label"], logits["heads"][run["attach"][0]], logits["heads"]["main"], rule)
        return cascade, data, collate, cached

    return load


def _run_cascade(cascade, data, collate, batch_size: int):
    preds, exits, confs, logits = [], [], [], []
    for start in range(0, len(data.test), batch_size):
        items = [data.test[i] for i in range(start, min(start + batch_size, len(data.test)))]
        out = cascade(to_device(collate(items)[0], cascade.device))
        preds.append(out.pred), exits.append(out.exited), confs.append(out.side_conf), logits.append(out.logits)
    return (torch.cat(preds).numpy(), torch.cat(exits).numpy(), torch.cat(confs).numpy(), torch.cat(logits).numpy())


def _thetas(cached: Cached) -> list[float]:
    """0, 1 and three thetas between the SideNet's test scores (exits and deferrals mixed)."""
    conf = np.sort(cached.score)
    mids = [(conf[i] + conf[i + 1]) / 2 for i in (len(conf) // 4, len(conf) // 2, 3 * len(conf) // 4)]
    return [0.0, *mids, 0.9, 1.0]


def _median_theta(cached: Cached) -> float:
    conf = np.sort(cached.score)
    return float((conf[len(conf) // 2] + conf[len(conf) // 2 + 1]) / 2)


def _check_against_cache(cached: Cached, theta, pred, exited, conf, logits):
    score = cached.score
    side_pred = np_confidence(cached.side_logits)[1]
    want_exit = score >= theta if theta < 1.0 else np.zeros(len(score), bool)
    want_pred = np.where(want_exit, side_pred, cached.main_logits.argmax(1))
    np.testing.assert_allclose(conf, score, atol=1e-4)
    flip = exited != want_exit
    assert np.all(np.abs(score[flip] - theta) < CONF_TOL), f"exit decisions differ at theta {theta}"
    wrong = np.flatnonzero(pred != want_pred)
    for i in wrong:
        if flip[i]:
            continue
        used = cached.side_logits[i] if want_exit[i] else cached.main_logits[i]
        top2 = np.sort(used)[-2:]
        assert top2[1] - top2[0] < GAP_TOL, f"sample {i}: cascade {pred[i]} vs cached {want_pred[i]} at theta {theta}"
    # the logits the cascade used are the cached ones of the head that answered
    want_logits = np.where(want_exit[:, None], cached.side_logits, cached.main_logits)
    ok = ~flip
    np.testing.assert_allclose(logits[ok], want_logits[ok], atol=2e-3, rtol=1e-3)
    return len(wrong)


@pytest.mark.parametrize("kind", ["image", "text"])
@pytest.mark.parametrize("mode", ["batched", "bs1"])
@pytest.mark.parametrize("rule", EXIT_RULES)
def test_cascade_equals_cached_logits(loaded, kind, mode, rule):
    cascade, data, collate, cached = loaded(kind, rule)
    assert cascade.exit_rule == rule
    mismatches = 0
    for theta in _thetas(cached):
        cascade.theta = theta
        pred, exited, conf, logits = _run_cascade(cascade, data, collate, EVAL_BATCH if mode == "batched" else 1)
        assert len(pred) == len(cached.labels)
        mismatches += _check_against_cache(cached, theta, pred, exited, conf, logits)
        if theta == 0.0:
            assert exited.all()
        if theta == 1.0:
            assert not exited.any()
        assert exited.mean() == pytest.approx(cached.curve().exit_fraction(theta), abs=1.5 / len(pred))
    assert mismatches <= 1  # and each one a near-tie (asserted above); in practice none


def _interleaved(cached: Cached, theta):
    ex, de = np.flatnonzero(cached.score >= theta), np.flatnonzero(cached.score < theta)
    m = min(len(ex), len(de), 8)
    assert m >= 2, "the smoke run needs both exits and deferrals at the median theta"
    return [int(i) for pair in zip(ex[:m], de[:m]) for i in pair], m


@pytest.mark.parametrize("kind", ["image", "text"])
def test_regrouping_keeps_order(loaded, kind, monkeypatch):
    cascade, data, collate, cached = loaded(kind)
    theta = cascade.theta = _median_theta(cached)
    order, m = _interleaved(cached, theta)  # exit, defer, exit, defer, ...
    x = to_device(collate([data.test[i] for i in order])[0], cascade.device)

    seen = []
    real_rest = cascade.net.rest
    monkeypatch.setattr(cascade.net, "rest", lambda state, k: seen.append(state) or real_rest(state, k))
    out = cascade(x)
    monkeypatch.undo()

    assert len(seen) == 1, "rest must run once, on the regrouped batch"
    rows = seen[0]["hidden"] if isinstance(seen[0], dict) else seen[0]
    assert rows.shape[0] == m == out.n_deferred
    assert out.exited.tolist() == [True, False] * m
    # the deferred rows are exactly their own x_c, in order (no recomputation, no shuffling)
    x_c = cascade.net.trunk(x, cascade.k)
    full_rows = x_c["hidden"] if isinstance(x_c, dict) else x_c
    torch.testing.assert_close(rows, full_rows[1::2])
    # each answer is the one that input gets alone (bs = 1) and the cached one
    for pos, i in enumerate(order):
        alone = cascade(to_device(collate([data.test[i]])[0], cascade.device))
        assert bool(alone.exited[0]) == bool(out.exited[pos])
        assert int(alone.pred[0]) == int(out.pred[pos])
        torch.testing.assert_close(alone.logits[0], out.logits[pos], atol=2e-3, rtol=1e-3)
    _check_against_cache(cached.subset(order), theta, out.pred.numpy(), out.exited.numpy(), out.side_conf.numpy(),
                         out.logits.numpy())


@pytest.mark.parametrize("kind", ["image", "text"])
@pytest.mark.parametrize("pool", [None, 5, 1000])
def test_stream_pools_deferred_samples_and_keeps_answers(loaded, kind, pool, monkeypatch):
    """Cascade.stream: deferred rows of several batches (text: of different padded lengths) go
    through rest together; every batch's answers equal __call__'s and the cached ones, in order."""
    cascade, data, collate, cached = loaded(kind)
    theta = cascade.theta = _median_theta(cached)
    sizes = [16, 7, 16, 1, 16]  # uneven batches
    starts = np.cumsum([0] + sizes[:-1])
    batches = [to_device(collate([data.test[i] for i in range(a, a + n)])[0], cascade.device)
               for a, n in zip(starts, sizes)]
    rest_rows = []
    real_rest = cascade.net.rest
    monkeypatch.setattr(cascade.net, "rest", lambda state, k: rest_rows.append(
        len(state["hidden"] if isinstance(state, dict) else state)) or real_rest(state, k))
    outs = list(cascade.stream(batches, pool=pool))
    monkeypatch.undo()
    assert [len(o.pred) for o in outs] == sizes
    deferred = sum(o.n_deferred for o in outs)
    assert sum(rest_rows) == deferred  # every deferred sample went through rest exactly once
    if pool == 1000:
        assert rest_rows == [deferred]  # one pooled rest at the end
    for o, x in zip(outs, batches):
        alone = cascade(x)
        assert torch.equal(o.pred, alone.pred) and torch.equal(o.exited, alone.exited)
        torch.testing.assert_close(o.logits, alone.logits, atol=2e-3, rtol=1e-3)
    n = sum(sizes)

    def cat(field):
        return torch.cat([getattr(o, field) for o in outs]).numpy()

    _check_against_cache(cached.subset(list(range(n))), theta, cat("pred"), cat("exited"), cat("side_conf"),
                         cat("logits"))


def test_concat_states_pads_text_states_to_the_longest():
    a = {"hidden": torch.ones(2, 3, 4), "mask": torch.ones(2, 3, dtype=torch.long)}
    b = {"hidden": torch.full((1, 5, 4), 2.0), "mask": torch.ones(1, 5, dtype=torch.long)}
    out = concat_states([a, b])
    assert out["hidden"].shape == (3, 5, 4) and out["mask"].tolist()[0] == [1, 1, 1, 0, 0]
    assert torch.equal(out["hidden"][:2, 3:], torch.zeros(2, 2, 4)) and torch.equal(out["hidden"][2], b["hidden"][0])
    assert concat_states([a]) is a
    assert torch.equal(concat_states([torch.ones(2, 3), torch.zeros(1, 3)]), torch.cat([torch.ones(2, 3),
                                                                                          torch.zeros(1, 3)]))


@pytest.mark.parametrize("kind", ["image", "text"])
def test_confident_input_never_enters_rest(loaded, kind):
    cascade, data, collate, cached = loaded(kind)
    net = cascade.net
    first_rest_block = net._layers[cascade.k]  # the first module of `rest`
    calls = []
    hooks = [first_rest_block.register_forward_pre_hook(lambda *_: calls.append("block")),
             net.classifier.register_forward_pre_hook(lambda *_: calls.append("head"))]
    try:
        cascade.theta = float(np.median(cached.score))
        for i in range(min(24, len(data.test))):
            calls.clear()
            out = cascade(to_device(collate([data.test[i]])[0], cascade.device))
            if bool(out.exited[0]):
                assert calls == [], f"sample {i} exited but rest ran"
            else:
                assert calls == ["block", "head"], f"sample {i} deferred but rest did not run once"
        cascade.theta = 0.0  # everything exits, even batched
        calls.clear()
        cascade(to_device(collate([data.test[i] for i in range(16)])[0], cascade.device))
        assert calls == []
        cascade.theta = 1.0  # nothing exits
        calls.clear()
        out = cascade(to_device(collate([data.test[i] for i in range(4)])[0], cascade.device))
        assert calls == ["block", "head"] and out.n_deferred == 4 and not out.exited.any()
    finally:
        for h in hooks:
            h.remove()


def test_no_host_sync_but_one_per_batch(loaded, monkeypatch):
    """No .item()/.tolist()/bool()/.cpu() in the hot path; exactly one nonzero (the one host sync)."""
    cascade, data, collate, cached = loaded("image")
    x = to_device(collate([data.test[i] for i in range(32)])[0], cascade.device)
    cascade.theta = float(np.median(cached.score))
    counts = {}

    def counting(name, fn):
        def wrapper(*a, **kw):
            counts[name] = counts.get(name, 0) + 1
            return fn(*a, **kw)
        return wrapper

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, counting(name, getattr(torch.Tensor, name)))
    monkeypatch.setattr(torch, "nonzero", counting("torch.nonzero", torch.nonzero))
    out = cascade(x)
    monkeypatch.undo()
    assert 0 < out.n_deferred < 32
    assert counts == {"torch.nonzero": 1}, counts


@pytest.mark.parametrize("rule", EXIT_RULES)
def test_confidence_matches_metrics(rule):
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(500, 10)) * 5).astype(np.float32)
    logits[0] = [80, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # saturated: exactly 1.0
    got = confidence(torch.from_numpy(logits), rule)
    assert got.dtype == torch.float64 and got[0].item() == 1.0
    np.testing.assert_allclose(got.numpy(), metrics.exit_score(logits, rule), rtol=1e-14, atol=1e-15)
    conf, pred = confidence_and_prediction(torch.from_numpy(logits))
    want_conf, want_pred = np_confidence(logits)
    np.testing.assert_array_equal(pred.numpy(), want_pred)
    np.testing.assert_allclose(conf.numpy(), want_conf, rtol=1e-15, atol=0)
    binary = torch.tensor([[0.0, 2.0], [0.0, -0.5]])
    p = torch.sigmoid(binary[:, 1]).double()
    if rule == "margin":
        torch.testing.assert_close(confidence(binary, rule), (2 * p - 1).abs())


def test_cascade_rejects_bad_settings(loaded):
    cascade, *_ = loaded("image")
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(UserError, match=r"theta must be in \[0, 1\]"):
            cascade.theta = bad
    with pytest.raises(UserError, match="the model has no SideNet at layer3; it has: layer1"):
        Cascade(cascade.model, "layer3", 0.5)
    with pytest.raises(UserError, match="unknown exit rule 'entropy'"):
        Cascade(cascade.model, exit_rule="entropy")
    with pytest.raises(UserError, match="unknown amp 'fp16'"):
        cascade.amp = "fp16"
    with pytest.raises(UserError, match="CUDA graphs need a CUDA device and an image MainNet"):
        Cascade(cascade.model, cuda_graphs=True)
    assert Cascade(cascade.model, "layer1").attach_name == "layer1" == Cascade(cascade.model, 1).attach_name


def test_load_cascade_refuses_runs_without_an_exit(smoke_runs, explorer_dbs):
    store, runs = smoke_runs
    with pytest.raises(UserError, match="CUDA graphs need"):
        load_cascade(store, runs["image"], theta=0.5, device="cpu", cuda_graphs=True)
    from engine.store import Store

    many = Store(explorer_dbs["many"])
    alone = next(r["run_id"] for r in many.list_runs() if r["mode"] == "mainnet-only")
    with pytest.raises(UserError, match="has no SideNet \\(mainnet-only\\): there is no early exit"):
        load_cascade(many, alone)
    with pytest.raises(UserError, match=f"run {explorer_dbs['failed_run']} is failed, not complete"):
        load_cascade(many, explorer_dbs["failed_run"])


def test_full_is_the_unsplit_mainnet(loaded):
    cascade, data, collate, cached = loaded("image")
    x = to_device(collate([data.test[i] for i in range(8)])[0], cascade.device)
    with torch.inference_mode():
        torch.testing.assert_close(cascade.full(x), cascade.model.mainnet(x))
    np.testing.assert_allclose(cascade.full(x).numpy(), cached.main_logits[:8], atol=2e-3, rtol=1e-3)


@pytest.mark.parametrize("rule", EXIT_RULES)
def test_auto_theta_for_run_uses_the_validation_split(smoke_runs, rule):
    store, runs = smoke_runs
    for run_id in runs.values():
        out = auto_theta_for_run(store, run_id, exit_rule=rule)
        val = prepare_one(store, run_id, split="val").curve_for(rule=rule)
        assert out == metrics.auto_theta(val)
        assert out["main_accuracy"] == val.main_accuracy
        assert val.accuracy(out["theta"]) >= val.main_accuracy - 0.005 - 1e-12


@pytest.mark.gpu
def test_cuda_one_sync_per_batch(smoke_image_run):
    import warnings

    store, run_id = smoke_image_run
    cascade, data, collate, _ = load_cascade(store, run_id, theta=0.5, device="cuda")
    x = to_device(collate([data.test[i] for i in range(64)])[0], cascade.device)
    cascade(x)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cascade(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= 1, [str(w.message) for w in syncs]


@pytest.mark.gpu
@pytest.mark.parametrize("rule", EXIT_RULES)
def test_cuda_cascade_takes_the_cpu_cascades_decisions(smoke_image_run, rule):
    """On the GPU (amp none: the run's "auto" would be bf16 there; CUDA graphs on, the default for
    an image MainNet) the scores match the CPU's to TF32 precision and the exit decisions match
    wherever a score is not within that precision of theta."""
    store, run_id = smoke_image_run
    gpu, data, collate, _ = load_cascade(store, run_id, theta=0.5, device="cuda", amp="none", exit_rule=rule)
    cpu, *_ = load_cascade(store, run_id, theta=0.5, device="cpu", exit_rule=rule)
    assert gpu.cuda_graphs and not cpu.cuda_graphs and gpu.exit_rule == rule
    x = collate([data.test[i] for i in range(64)])[0]
    for theta in (0.0, 0.6, 0.9, 1.0):
        gpu.theta = cpu.theta = theta
        a, b = gpu(x.to("cuda")), cpu(x)
        torch.testing.assert_close(a.side_conf.cpu(), b.side_conf, atol=5e-3, rtol=0)
        far = (b.side_conf - theta).abs() > 5e-3
        assert torch.equal(a.exited.cpu()[far], b.exited[far])
        assert (a.pred.cpu() == b.pred).float().mean() >= 0.95
