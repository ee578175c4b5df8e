"""The cascade runtime against the cached-logit computation, on the real smoke runs (CPU)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.analysis import load_view, path_costs
from engine.cascade import Cascade, auto_theta, auto_theta_for_run, confidence_and_prediction, load_cascade
from engine.errors import UserError
from engine.metrics import ThetaCurve
from engine.metrics import confidence_and_prediction as np_confidence
from engine.train import to_device

# A mismatch with the cached logits is accepted only where the two computations are allowed to
# differ in the last float bits: a SideNet confidence within CONF_TOL of theta (the exit can flip)
# or a top-2 logit gap within GAP_TOL (argmax can flip). The cached logits come from batches of
# 128 (padded to the batch's longest sentence for text); bs=1 / regrouped batches compute the same
# numbers in another order. In practice there are none; the tolerance keeps the test honest, not flaky.
CONF_TOL, GAP_TOL = 1e-5, 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cascades(smoke_runs):
    store, runs = smoke_runs
    out = {}
    for kind, run_id in runs.items():
        cascade, data, collate, run = load_cascade(store, run_id, theta=0.5)
        out[kind] = (cascade, data, collate, run, load_view(store, run_id))
    return out


def _eval_batch_size(run) -> int:
    return max(run["config"]["batch_size"], 128)  # engine.train.evaluate's batches


def _run_cascade(cascade, data, collate, batch_size: int):
    preds, exits, confs, logits = [], [], [], []
    for start in range(0, len(data.test), batch_size):
        items = [data.test[i] for i in range(start, min(start + batch_size, len(data.test)))]
        out = cascade(to_device(collate(items)[0], cascade.device))
        preds.append(out.pred), exits.append(out.exited), confs.append(out.side_conf), logits.append(out.logits)
    return (torch.cat(preds).numpy(), torch.cat(exits).numpy(), torch.cat(confs).numpy(), torch.cat(logits).numpy())


def _thetas(view) -> list[float]:
    """0, 1 and three thetas between the SideNet's test confidences (exits and deferrals mixed)."""
    conf = np.sort(np_confidence(view.side_logits)[0])
    mids = [(conf[i] + conf[i + 1]) / 2 for i in (len(conf) // 4, len(conf) // 2, 3 * len(conf) // 4)]
    return [0.0, *mids, 0.9, 1.0]


def _check_against_cache(view, theta, pred, exited, conf, logits):
    side_conf, side_pred = np_confidence(view.side_logits)
    want_exit = side_conf >= theta if theta < 1.0 else np.zeros(len(side_conf), bool)
    want_pred = np.where(want_exit, side_pred, view.main_logits.argmax(1))
    np.testing.assert_allclose(conf, side_conf, atol=1e-4)
    flip = exited != want_exit
    assert np.all(np.abs(side_conf[flip] - theta) < CONF_TOL), f"exit decisions differ at theta {theta}"
    wrong = np.flatnonzero(pred != want_pred)
    for i in wrong:
        if flip[i]:
            continue
        used = view.side_logits[i] if want_exit[i] else view.main_logits[i]
        top2 = np.sort(used)[-2:]
        assert top2[1] - top2[0] < GAP_TOL, f"sample {i}: cascade {pred[i]} vs cached {want_pred[i]} at theta {theta}"
    # the logits the cascade used are the cached ones of the head that answered
    want_logits = np.where(want_exit[:, None], view.side_logits, view.main_logits)
    ok = ~flip
    np.testing.assert_allclose(logits[ok], want_logits[ok], atol=2e-3, rtol=1e-3)
    return len(wrong)


@pytest.mark.parametrize("kind", ["image", "text"])
@pytest.mark.parametrize("mode", ["batched", "bs1"])
def test_cascade_equals_cached_logits(cascades, kind, mode):
    cascade, data, collate, run, view = cascades[kind]
    batch_size = _eval_batch_size(run) if mode == "batched" else 1
    thetas = _thetas(view)
    mismatches = 0
    for theta in thetas:
        cascade.theta = theta
        pred, exited, conf, logits = _run_cascade(cascade, data, collate, batch_size)
        assert len(pred) == len(view.labels)
        mismatches += _check_against_cache(view, theta, pred, exited, conf, logits)
        if theta == 0.0:
            assert exited.all()
        if theta == 1.0:
            assert not exited.any()
        assert exited.mean() == pytest.approx(view.curve().exit_fraction(theta), abs=1.5 / len(pred))
    assert mismatches <= 1  # and each one a near-tie (asserted above); in practice none


def _interleaved(view, theta):
    conf = np_confidence(view.side_logits)[0]
    ex, de = np.flatnonzero(conf >= theta), np.flatnonzero(conf < theta)
    m = min(len(ex), len(de), 8)
    assert m >= 2, "the smoke run needs both exits and deferrals at the median theta"
    return [int(i) for pair in zip(ex[:m], de[:m]) for i in pair], m


@pytest.mark.parametrize("kind", ["image", "text"])
def test_regrouping_keeps_order(cascades, kind, monkeypatch):
    cascade, data, collate, run, view = cascades[kind]
    conf = np.sort(np_confidence(view.side_logits)[0])
    theta = float((conf[len(conf) // 2] + conf[len(conf) // 2 + 1]) / 2)
    cascade.theta = theta
    order, m = _interleaved(view, theta)  # exit, defer, exit, defer, ...
    items = [data.test[i] for i in order]
    x = to_device(collate(items)[0], cascade.device)

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
    _check_against_cache(_subset(view, order), theta, out.pred.numpy(), out.exited.numpy(),
                         out.side_conf.numpy(), out.logits.numpy())


def _subset(view, order):
    import dataclasses

    return dataclasses.replace(view, labels=view.labels[order], main_logits=view.main_logits[order],
                               side_logits=view.side_logits[order])


@pytest.mark.parametrize("kind", ["image", "text"])
@pytest.mark.parametrize("pool", [None, 5, 1000])
def test_stream_pools_deferred_samples_and_keeps_answers(cascades, kind, pool, monkeypatch):
    """Cascade.stream: deferred rows of several batches (text: of different padded lengths) go
    through rest together; every batch's answers equal __call__'s and the cached ones, in order."""
    cascade, data, collate, run, view = cascades[kind]
    conf = np.sort(np_confidence(view.side_logits)[0])
    theta = float((conf[len(conf) // 2] + conf[len(conf) // 2 + 1]) / 2)
    cascade.theta = theta
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
    cat = lambda f: torch.cat([getattr(o, f) for o in outs]).numpy()  # noqa: E731
    _check_against_cache(_subset(view, list(range(n))), theta, cat("pred"), cat("exited"), cat("side_conf"),
                         cat("logits"))


@pytest.mark.parametrize("kind", ["image", "text"])
def test_confident_input_never_enters_rest(cascades, kind):
    cascade, data, collate, run, view = cascades[kind]
    net = cascade.net
    first_rest_block = net._layers[cascade.k]  # the first module of `rest`
    calls = []
    hooks = [first_rest_block.register_forward_pre_hook(lambda *_: calls.append("block")),
             (net.net.fc if hasattr(net, "net") else net.head_net).register_forward_pre_hook(
                 lambda *_: calls.append("head"))]
    try:
        conf = np_confidence(view.side_logits)[0]
        cascade.theta = float(np.median(conf))
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


def test_no_host_sync_but_one_per_batch(cascades, monkeypatch):
    """No .item()/.tolist()/bool()/.cpu() in the hot path; exactly one nonzero (the one host sync)."""
    cascade, data, collate, run, view = cascades["image"]
    x = to_device(collate([data.test[i] for i in range(32)])[0], cascade.device)
    cascade.theta = float(np.median(np_confidence(view.side_logits)[0]))
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graphs_give_the_eager_answers(smoke_image_run):
    """Graphed and eager cascades agree on every sample, at thetas captured once (the exit
    decision is outside the graph), for partial exits (padded buckets) and in the pooled stream."""
    store, run_id = smoke_image_run
    graphed, data, collate, _ = load_cascade(store, run_id, theta=0.5, device="cuda", cuda_graphs=True)
    eager = Cascade(graphed.model, theta=0.5, amp=graphed.amp, cuda_graphs=False)
    assert graphed.cuda_graphs and not eager.cuda_graphs
    batches = [to_device(collate([data.test[i] for i in range(s, min(s + 48, len(data.test)))])[0], "cuda")
               for s in range(0, len(data.test), 48)]
    for theta in (0.0, 0.5, 0.9, 1.0):
        graphed.theta = eager.theta = theta
        for x in batches:
            a, b = graphed(x), eager(x)
            assert torch.equal(a.exited, b.exited) and torch.equal(a.pred, b.pred)
            torch.testing.assert_close(a.logits, b.logits, rtol=1e-3, atol=1e-3)
        streamed = torch.cat([o.pred for o in graphed.stream(batches)])
        assert torch.equal(streamed, torch.cat([eager(x).pred for x in batches]))
    assert 0 < len(graphed._pieces["rest"].graphs) <= 8  # padded to powers of two


def test_cuda_graphs_need_cuda(smoke_image_run):
    store, run_id = smoke_image_run
    with pytest.raises(UserError, match="CUDA graphs need"):
        load_cascade(store, run_id, theta=0.5, device="cpu", cuda_graphs=True)


def test_bucket_is_the_next_power_of_two():
    from engine.cuda_graphs import bucket

    assert [bucket(n) for n in (1, 2, 3, 5, 64, 65, 1000)] == [1, 2, 4, 8, 64, 128, 1024]


def test_confidence_matches_metrics():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(500, 10)) * 5).astype(np.float32)
    logits[0] = [80, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # saturated: exactly 1.0
    conf, pred = confidence_and_prediction(torch.from_numpy(logits))
    want_conf, want_pred = np_confidence(logits)
    np.testing.assert_array_equal(pred.numpy(), want_pred)
    np.testing.assert_allclose(conf.numpy(), want_conf, rtol=1e-15, atol=0)
    assert conf[0].item() == 1.0


def test_cascade_rejects_bad_settings(cascades):
    cascade, *_ = cascades["image"]
    with pytest.raises(UserError):
        cascade.theta = 1.5
    with pytest.raises(UserError):
        cascade.theta = float("nan")
    with pytest.raises(UserError):
        Cascade(cascade.model, "layer3", 0.5)  # no SideNet there
    cascade.theta = 0.5


# ----------------------------------------------------------------------------- auto theta


def _brute_force(curve, max_drop):
    cands = np.unique(np.concatenate([curve.conf[curve.conf < 1], [np.nextafter(1.0, 0.0)] * bool((curve.conf == 1).any()), [1.0]]))
    for t in cands:  # ascending: the first feasible is the smallest theta = the largest exit
        if curve.accuracy(float(t)) >= curve.main_accuracy - max_drop - 1e-12:
            return float(t)
    raise AssertionError


@pytest.mark.parametrize("seed", range(5))
def test_auto_theta_is_the_largest_exit_within_half_a_point(seed):
    rng = np.random.default_rng(seed)
    n = 400
    conf = rng.uniform(0.3, 1.0, n).round(3)  # ties on purpose
    side_ok = rng.uniform(size=n) < conf  # roughly calibrated
    main_ok = rng.uniform(size=n) < 0.9
    curve = ThetaCurve.from_outcomes(conf, side_ok, main_ok)
    out = auto_theta(curve)
    assert out["theta"] == _brute_force(curve, 0.005)
    assert out["accuracy"] >= curve.main_accuracy - 0.005 - 1e-12
    assert out["exit_fraction"] == curve.exit_fraction(out["theta"])
    # every smaller candidate theta exits more but loses more than half a point
    smaller = np.unique(conf[conf < out["theta"]])
    assert all(curve.accuracy(float(t)) < curve.main_accuracy - 0.005 for t in smaller)


def test_auto_theta_edge_cases():
    # a useless SideNet: nothing may exit -> theta 1.0, the MainNet's accuracy
    curve = ThetaCurve.from_outcomes(np.full(100, 0.99), np.zeros(100, bool), np.ones(100, bool))
    assert auto_theta(curve)["theta"] == 1.0 and auto_theta(curve)["exit_fraction"] == 0.0
    # a perfect SideNet: everything exits at the smallest confidence
    conf = np.linspace(0.5, 1.0, 100)
    curve = ThetaCurve.from_outcomes(conf, np.ones(100, bool), np.ones(100, bool))
    assert auto_theta(curve)["theta"] == 0.5 and auto_theta(curve)["exit_fraction"] == 1.0
    # only saturated confidences (exactly 1.0) are right: theta just below 1 exits them, 1.0 would not
    conf = np.r_[np.ones(50), np.full(50, 0.9)]
    side_ok = np.r_[np.ones(50, bool), np.zeros(50, bool)]
    curve = ThetaCurve.from_outcomes(conf, side_ok, np.ones(100, bool))
    out = auto_theta(curve)
    assert out["theta"] == np.nextafter(1.0, 0.0) and out["exit_fraction"] == 0.5 and out["accuracy"] == 1.0
    with pytest.raises(ValueError):
        auto_theta(curve, max_drop=-0.1)


def test_auto_theta_for_run_uses_the_validation_split(smoke_runs):
    store, runs = smoke_runs
    for run_id in runs.values():
        out = auto_theta_for_run(store, run_id)
        val = load_view(store, run_id, split="val").curve()
        assert out["main_accuracy"] == val.main_accuracy
        assert val.accuracy(out["theta"]) >= val.main_accuracy - 0.005 - 1e-12
        assert out["theta"] == _brute_force(val, 0.005)


# ----------------------------------------------------------------------------- latency and bench


def test_latency_measured_and_stored(smoke_runs):
    from engine.latency import PARTS, device_name, measure_run

    store, runs = smoke_runs
    for run_id in runs.values():
        rows = measure_run(store, run_id, device="cpu", batch_size=8, repeats=5, batch_repeats=2, warmup=1, n_inputs=4)
        stored = store.latency(run_id)
        assert {(r["part"], r["batch_size"]) for r in stored} == {(p, b) for p in PARTS for b in (1, 8)}
        assert all(r["device"] == device_name(torch.device("cpu")) for r in stored)
        assert all(0 < r["median_ms"] <= r["p95_ms"] and r["throughput"] > 0 for r in rows)
        attach = store.get_run(run_id)["attach"][0]
        costs = path_costs(store.costs(run_id), stored, attach)
        assert set(costs) == {"params", "macs", "ms"}
        ms = {r["part"]: r["median_ms"] for r in rows if r["batch_size"] == 1}
        assert costs["ms"].trunk == ms["trunk+sidenet"] and costs["ms"].rest == ms["rest"]
        assert costs["ms"].full == ms["full"]  # the measured unsplit MainNet, not trunk + rest
        # measuring again replaces (not duplicates) this device's rows
        measure_run(store, run_id, device="cpu", batch_size=8, repeats=3, batch_repeats=1, warmup=1, n_inputs=2)
        assert len(store.latency(run_id)) == len(stored)


def test_latency_costs_come_from_one_device_the_last_measured():
    costs = {"layer1": {part: {"params": 1.0, "macs": 1.0} for part in ("trunk", "sidenet", "rest")}}
    def row(device, part, ms, when, batch=1):
        return {"attach": "layer1", "device": device, "part": part, "batch_size": batch, "median_ms": ms,
                "measured_at": when}
    latency = [row("cpu", "trunk+sidenet", 2.0, "2026-01-01"), row("cpu", "rest", 6.0, "2026-01-01"),
               row("cpu", "full", 7.0, "2026-01-01"), row("NVIDIA H200", "trunk+sidenet", 0.2, "2026-02-01"),
               row("NVIDIA H200", "rest", 0.3, "2026-02-01"), row("NVIDIA H200", "full", 0.4, "2026-02-01"),
               row("NVIDIA H200", "rest", 9.0, "2026-03-01", batch=64)]
    ms = path_costs(costs, latency, "layer1")["ms"]
    assert (ms.trunk, ms.rest, ms.full) == (0.2, 0.3, 0.4)
    assert path_costs(costs, latency[:3], "layer1")["ms"].full == 7.0
    assert path_costs(costs, [], "layer1").keys() == {"params", "macs"}
    # a MainNet-only run: its measured full time is its one path
    alone = {"none": {part: {"params": 1.0, "macs": 1.0} for part in ("trunk", "sidenet", "rest")}}
    ms = path_costs(alone, [{**row("cpu", "full", 7.0, "2026-01-01"), "attach": "none"}], None)["ms"]
    assert (ms.trunk, ms.rest, ms.full) == (7.0, 0.0, 7.0)


def test_bench_cascade(smoke_runs, capsys):
    from engine.bench_cascade import bench_cascade
    from engine.cli import main

    store, runs = smoke_runs
    out = bench_cascade(store, runs["image"], theta="auto", batch=32, rounds=2, device="cpu", limit=64)
    assert out["agreement_with_cached"] == 1.0 and out["exit_agreement_with_cached"] == 1.0
    assert out["theta_source"] == "auto" and out["auto_theta_val"]["theta"] == out["theta"]
    view = load_view(store, runs["image"])
    macs = view.costs["macs"]
    timed = ThetaCurve.from_logits(view.side_logits[:64], view.main_logits[:64], view.labels[:64])  # --limit 64
    avg = macs.trunk + macs.sidenet + (1 - timed.exit_fraction(out["theta"])) * macs.rest
    assert out["ideal_speedup"] == pytest.approx(macs.full / avg)
    assert out["ratio"] == pytest.approx(out["realized_speedup"] / out["ideal_speedup"])
    assert len(out["realized_speedup_per_round"]) == 2 and out["realized_speedup"] > 0
    pooled = bench_cascade(store, runs["image"], theta=0.9, batch=16, rounds=1, device="cpu", limit=48, pool=True)
    assert pooled["ratio_pooled"] == pytest.approx(pooled["realized_speedup_pooled"] / pooled["ideal_speedup"])

    code = main(["--db", str(store.path), "bench", "cascade", runs["text"], "--theta", "0.7", "--batch", "1",
                 "--rounds", "1", "--limit", "8", "--device", "cpu", "--json"])
    assert code == 0
    text = json.loads(capsys.readouterr().out)
    assert text["theta"] == 0.7 and text["batch"] == 1 and text["n"] == 8
    assert text["agreement_with_cached"] == 1.0
    # the ideal counts each sentence at its own length (bs=1): recount input by input
    from engine.costs import path_costs

    cascade, data, collate, _ = load_cascade(store, runs["text"], theta=0.7)
    full = spent = 0.0
    for i in range(8):
        x = collate([data.test[i]])[0]
        c = path_costs(cascade.model, x, 1)[cascade.k]
        full += c["full"]["macs"]
        spent += c["trunk"]["macs"] + c["sidenet"]["macs"] + (0.0 if bool(cascade(x).exited[0]) else c["rest"]["macs"])
    assert text["ideal_speedup"] == pytest.approx(full / spent)
    assert len({len(data.test[i][0].split()) for i in range(8)}) > 1  # the sentences differ in length

    assert main(["--db", str(store.path), "bench", "cascade", runs["image"], "--theta", "0.5", "--limit", "16",
                 "--rounds", "1", "--device", "cpu"]) == 0
    assert "ratio realized/ideal" in capsys.readouterr().out
    assert main(["--db", str(store.path), "bench", "cascade", runs["image"]]) == 2  # no --theta: a clear error
    assert "--theta" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--db", str(store.path), "bench", "cascade", runs["image"], "--theta", "lots"])


def test_latency_cli(smoke_runs, capsys):
    from engine.cli import main

    store, runs = smoke_runs
    assert main(["--db", str(store.path), "latency", runs["image"], "--device", "cpu", "--batch", "4",
                 "--repeats", "3"]) == 0
    assert "trunk+sidenet" in capsys.readouterr().out
    assert main(["--db", str(store.path), "latency", "no-such-run"]) == 2
