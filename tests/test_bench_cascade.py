"""engine.bench.cascade: realised vs ideal speed-up of a run's real cascade (small CPU runs)."""
import numpy as np
import pytest

from engine.analysis.runs import prepare_one
from engine.bench.cascade import bench_cascade, format_report
from engine.costs import measure_paths
from engine.errors import UserError
from engine.metrics import ThetaCurve
from engine.runtime.cascade import auto_theta_for_run, load_cascade

pytestmark = pytest.mark.usefixtures("one_thread")


def test_auto_theta_image_run(smoke_runs):
    store, runs = smoke_runs
    out = bench_cascade(store, runs["image"], theta="auto", batch=32, rounds=2, device="cpu", limit=64)
    assert out["agreement_with_cached"] == 1.0 and out["exit_agreement_with_cached"] == 1.0
    assert out["theta_source"] == "auto" and out["auto_theta_val"] == auto_theta_for_run(store, runs["image"])
    assert out["theta"] == out["auto_theta_val"]["theta"] and out["n"] == 64
    view = prepare_one(store, runs["image"])
    macs = view.costs["macs"]
    logits = store.logits(runs["image"])
    timed = ThetaCurve.from_logits(logits["heads"]["layer1"][:64], logits["heads"]["main"][:64], logits["label"][:64])
    avg = macs.trunk + macs.sidenet + (1 - timed.exit_fraction(out["theta"])) * macs.rest
    assert out["ideal_speedup"] == pytest.approx(macs.full / avg)  # images: every batch costs the same per input
    assert out["exit_fraction"] == timed.exit_fraction(out["theta"]) == out["exit_fraction_measured"]
    assert out["ratio"] == pytest.approx(out["realized_speedup"] / out["ideal_speedup"])
    assert out["meets_goal"] == (out["ratio"] >= out["goal"])
    assert len(out["realized_speedup_per_round"]) == 2 and out["realized_speedup"] > 0
    assert out["realized_speedup"] == pytest.approx(float(np.median(out["realized_speedup_per_round"])), rel=1e-3)
    report = format_report(out)
    assert out["run_id"] in report and "ratio realized/ideal" in report and "auto: val accuracy" in report


def test_pooled_stream_and_margin_rule(smoke_runs):
    store, runs = smoke_runs
    pooled = bench_cascade(store, runs["image"], theta=0.9, batch=16, rounds=1, device="cpu", limit=48, pool=True,
                           exit_rule="margin")
    assert pooled["exit_rule"] == "margin" and pooled["agreement_with_cached"] == 1.0
    assert pooled["ratio_pooled"] == pytest.approx(pooled["realized_speedup_pooled"] / pooled["ideal_speedup"])
    assert "pooled (Cascade.stream" in format_report(pooled)


def test_text_ideal_counts_each_sentence_at_its_own_length(smoke_runs):
    store, runs = smoke_runs
    out = bench_cascade(store, runs["text"], theta=0.7, batch=1, rounds=1, device="cpu", limit=8)
    assert (out["theta"], out["batch"], out["n"], out["theta_source"]) == (0.7, 1, 8, "given")
    assert out["agreement_with_cached"] == 1.0 and out["auto_theta_val"] is None
    # the ideal counts each sentence at its own length (bs=1): recount input by input
    cascade, data, collate, _ = load_cascade(store, runs["text"], theta=0.7)
    full = spent = 0.0
    for i in range(8):
        x = collate([data.test[i]])[0]
        c = measure_paths(cascade.model, x, 1)[cascade.k]
        full += c["full"]["macs"]
        spent += c["trunk"]["macs"] + c["sidenet"]["macs"] + (0.0 if bool(cascade(x).exited[0]) else c["rest"]["macs"])
    assert out["ideal_speedup"] == pytest.approx(full / spent)
    assert len({len(data.test[i][0].split()) for i in range(8)}) > 1  # the sentences differ in length


def test_bad_requests_are_user_errors(smoke_runs, explorer_dbs):
    from engine.store import Store

    store, runs = smoke_runs
    for kw in ({"batch": 0}, {"rounds": 0}, {"limit": 0}, {"threads": 0}):
        with pytest.raises(UserError, match="must be at least 1"):
            bench_cascade(store, runs["image"], theta=0.5, device="cpu", **kw)
    many = Store(explorer_dbs["many"])
    alone = next(r["run_id"] for r in many.list_runs() if r["mode"] == "mainnet-only")
    with pytest.raises(UserError, match="has no SideNet \\(mainnet-only\\): there is no cascade to benchmark"):
        bench_cascade(many, alone, theta=0.5, device="cpu")
