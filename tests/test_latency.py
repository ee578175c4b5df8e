"""engine.runtime.latency: the measured time of each part of a cascade, stored per run and device."""
import pytest
import torch

from engine.analysis.runs import path_costs_of
from engine.errors import UserError
from engine.runtime.checkpoint import model_for_run
from engine.runtime.device import device_label
from engine.runtime.latency import PARTS, inputs_for, measure, measure_run, time_parts, timer

pytestmark = pytest.mark.usefixtures("one_thread")


def test_time_parts_interleaves_and_times_every_call():
    calls = []
    fns = {name: (lambda x, name=name: calls.append((name, x))) for name in ("a", "b", "c")}
    ms = time_parts(fns, ["x0", "x1"], torch.device("cpu"), repeats=3, warmup=1)
    assert set(ms) == {"a", "b", "c"} and all(v.shape == (3,) and (v >= 0).all() for v in ms.values())
    # warm-up round r=-1 then r=0..2; the order rotates each round, the inputs cycle
    assert [c[0] for c in calls] == ["c", "a", "b", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert [c[1] for c in calls[::3]] == ["x1", "x0", "x1", "x0"]
    assert timer(torch.device("cpu"))() > 0


def test_measured_rows_are_stored_and_replaced(smoke_copy):
    store, runs = smoke_copy
    for run_id in runs.values():
        rows = measure_run(store, run_id, device="cpu", batch_size=8, repeats=5, batch_repeats=2, warmup=1, n_inputs=4)
        stored = store.latency(run_id)
        assert {(r["part"], r["batch_size"]) for r in stored} == {(p, b) for p in PARTS for b in (1, 8)}
        assert all(r["device"] == device_label(torch.device("cpu")) for r in stored + rows)
        assert all(0 < r["median_ms"] <= r["p95_ms"] for r in rows)
        assert all(r["throughput"] == pytest.approx(r["batch_size"] * 1e3 / r["median_ms"]) for r in rows)
        attach = store.get_run(run_id)["attach"][0]
        costs = path_costs_of(store.costs(run_id), stored, attach)
        assert set(costs) == {"params", "macs", "ms"}
        ms = {r["part"]: r["median_ms"] for r in rows if r["batch_size"] == 1}
        assert costs["ms"].trunk == ms["trunk+sidenet"] and costs["ms"].rest == ms["rest"]
        assert costs["ms"].full == ms["full"]  # the measured unsplit MainNet, not trunk + rest
        # measuring again replaces (not duplicates) this device's rows; save=False stores nothing
        measure_run(store, run_id, device="cpu", batch_size=8, repeats=3, batch_repeats=1, warmup=1, n_inputs=2)
        assert len(store.latency(run_id)) == len(stored)
        before = store.latency(run_id)
        measure_run(store, run_id, device="cpu", batch_size=2, repeats=1, batch_repeats=1, warmup=0, n_inputs=1,
                    save=False)
        assert store.latency(run_id) == before


def test_a_mainnet_only_model_has_one_part(smoke_runs):
    store, runs = smoke_runs
    model, data, collate = model_for_run(store.get_run(runs["image"]), store, "cpu")
    model.attach = []  # the MainNet alone: the "full" part, attach "none"
    cpu = torch.device("cpu")
    rows = measure(model, cpu, inputs_for(data, collate, cpu, 1, 2), inputs_for(data, collate, cpu, 4, 1),
                   repeats=2, batch_repeats=1, warmup=0)
    assert {(r["attach"], r["part"], r["batch_size"]) for r in rows} == {("none", "full", 1), ("none", "full", 4)}


def test_inputs_wrap_around_the_test_split(smoke_runs):
    store, runs = smoke_runs
    _, data, collate = model_for_run(store.get_run(runs["image"]), store, "cpu")
    n = len(data.test)
    batches = inputs_for(data, collate, torch.device("cpu"), 3, 2, start=n - 4)
    assert [b.shape[0] for b in batches] == [3, 3]
    want = collate([data.test[i % n] for i in range(n - 4, n + 2)])[0]
    assert torch.equal(torch.cat(batches), want)


def test_bad_requests_are_user_errors(smoke_runs, explorer_dbs):
    from engine.store import Store

    store, runs = smoke_runs
    for kw in ({"batch_size": 0}, {"repeats": 0}, {"n_inputs": 0}, {"warmup": -1}):  # (nothing measured)
        with pytest.raises(UserError, match="must be at least 1"):
            measure_run(store, runs["image"], device="cpu", **kw)
    with pytest.raises(UserError, match="no run 'nope'"):
        measure_run(store, "nope", device="cpu")
    with pytest.raises(UserError, match="is failed, not complete"):
        measure_run(Store(explorer_dbs["many"]), explorer_dbs["failed_run"], device="cpu")
