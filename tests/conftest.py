"""Fixtures only (helpers are in tests/helpers.py): one real smoke training (tiny real subsets) per
test session, the explorer's test databases built from it, and the AppTest / engine views of them.

Markers (pyproject.toml): `slow` is added here to every test that needs a trained run (the first
one to ask trains it), `gpu` tests are skipped without CUDA, `browser` tests skip without chromium.
"""
from __future__ import annotations

import os

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

TRAINED = {"smoke_image_run", "smoke_runs", "smoke_copy", "explorer_dbs"}


def pytest_collection_modifyitems(config, items):
    no_cuda = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if TRAINED & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(no_cuda)


@pytest.fixture(scope="session", autouse=True)
def isolated_caches(tmp_path_factory):
    """The feature cache and the job folders of the whole session (and of the processes it starts)
    live in a temp dir, never in data/; SIDENETS_DB is never inherited from the shell."""
    root = tmp_path_factory.mktemp("caches")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIDENETS_FEATURES", str(root / "features"))
        mp.setenv("SIDENETS_DB", str(root / "default.duckdb"))
        mp.delenv("SIDENETS_JOBS", raising=False)
        yield root


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine two OpenMP threads per process thrash
    (bs=1 calls run ~10x slower under load); the answers do not depend on it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def smoke_config(dataset: str):
    """The smoke preset's config for a dataset, on the CPU even where a GPU is visible (the tests
    compare against CPU float32 recomputations; the CUDA tests move the trained run to the GPU)."""
    import dataclasses

    from engine.presets import preset

    return dataclasses.replace(next(cfg for cfg in preset("smoke") if cfg.dataset == dataset), device="cpu")


@pytest.fixture(scope="session")
def smoke_image_run(tmp_path_factory):
    """(Store, run_id): the `smoke` preset's ResNet18 on 256 Fashion-MNIST images per split, one
    epoch, trained once into a temp DB with its checkpoint beside it (needs no text model)."""
    from engine.store import Store
    from engine.train import train_run

    store = Store(tmp_path_factory.mktemp("smoke") / "smoke.duckdb")
    cfg = smoke_config("fashion-mnist")
    return store, train_run(cfg, cfg.seeds[0], store)


@pytest.fixture(scope="session")
def smoke_runs(smoke_image_run):
    """(Store, {"image": run_id, "text": run_id}): the image run above plus the `smoke` preset's
    MiniLM-L6 on 96 Rotten-Tomatoes sentences per split, one epoch, in the same DB."""
    from engine.train import train_run

    store, image_run = smoke_image_run
    cfg = smoke_config("rt-polarity")
    return store, {"image": image_run, "text": train_run(cfg, cfg.seeds[0], store)}


@pytest.fixture
def smoke_copy(smoke_runs, tmp_path):
    """(Store, runs) of a copy of the smoke DB for a test that writes to it (latency rows, deletes);
    the checkpoints folder is linked, not copied (read only)."""
    from engine.store import Store

    from helpers import copy_db

    store, runs = smoke_runs
    copy_db(store.path, tmp_path / store.path.name)
    (tmp_path / "checkpoints").symlink_to(store.path.parent / "checkpoints")
    return Store(tmp_path / store.path.name), runs


# -- the explorer's test databases (tests/test_app_*.py, tests/test_browser.py) -----------------
@pytest.fixture(scope="session")
def explorer_dbs(smoke_runs, tmp_path_factory):
    """Paths of DuckDB files for the app tests, all built from the real smoke runs:

    - "many": the smoke image run replicated as 3 seeds (with logit noise, so seeds differ), the
      text run as 2 seeds, a MainNet-only configuration made from the image run's MainNet head
      (mode mainnet-only), plus a FAILED run that has samples and a RUNNING run (never shown);
      replicated runs have no checkpoint;
    - "one": a single (replicated) image run;
    - "empty": a DuckDB file with the schema and no run; "bad": a text file; "missing": no file.
    Replicated runs are labelled as such in their device / config.
    """
    import numpy as np

    from engine.store import Store
    from explorer.bench import replicate_runs

    source, runs = smoke_runs
    root = tmp_path_factory.mktemp("explorer")
    many = Store(root / "many.duckdb")
    replicate_runs(source, many, n_runs=3, n_samples=256, run_ids=[runs["image"]], noise=0.7, seed=1)
    replicate_runs(source, many, n_runs=2, n_samples=96, run_ids=[runs["text"]], noise=0.7, seed=2)
    image = source.get_run(runs["image"])
    data = source.logits(runs["image"])
    full = source.costs(runs["image"])[image["attach"][0]]["full"]
    meta = {k: image[k] for k in ("model", "dataset", "num_classes", "class_names", "versions", "git_commit")}
    for seed in (0, 1):
        rid = many.start_run({**meta, "mode": "mainnet-only", "seed": seed, "attach": [], "sidenet_hidden": 32,
                              "sidenet_order": "linear-bn-relu", "device": "test fixture (MainNet head of a smoke run)",
                              "config": {**image["config"], "mode": "mainnet-only", "seeds": [seed],
                                         "replicated_from": runs["image"]}})
        rng = np.random.default_rng(seed)
        main = (data["heads"]["main"] + rng.normal(0, 0.3 * seed, data["heads"]["main"].shape)).astype(np.float32)
        many.finish_run(rid, epochs=source.epochs(runs["image"]),
                        costs={"none": {"trunk": full, "sidenet": {"params": 0, "macs": 0.0},
                                        "rest": {"params": 0, "macs": 0.0}, "full": full}},
                        samples={"test": {"idx": data["idx"], "label": data["label"], "heads": {"main": main}}},
                        wall_time_s=1.0, checkpoint=None)
    failed = replicate_runs(source, many, n_runs=1, n_samples=256, run_ids=[runs["image"]], noise=0.0)[0]
    with many.connect(write=True) as con:  # (Store.fail_run leaves a complete run alone; older files hold such runs)
        con.execute("UPDATE runs SET status = 'failed', error = ? WHERE run_id = ?",
                    ["RuntimeError: a test failure after the samples were written", failed])
    many.start_run({**meta, "mode": "joint", "seed": 7, "attach": image["attach"], "sidenet_hidden": 32,
                    "sidenet_order": "linear-bn-relu", "config": image["config"], "run_id": "still-running-run"})
    one = Store(root / "one.duckdb")
    replicate_runs(source, one, n_runs=1, n_samples=256, run_ids=[runs["image"]])
    empty = Store(root / "empty.duckdb")
    with empty.connect(write=True):
        pass
    bad = root / "bad.duckdb"
    bad.write_text("this is not a DuckDB database\n" * 10)
    return {"many": many.path, "one": one.path, "empty": empty.path, "bad": bad, "missing": root / "missing.duckdb",
            "failed_run": failed, "running_run": "still-running-run"}


@pytest.fixture
def open_app(monkeypatch):
    """open_app(db, page=None) -> a run AppTest of explorer/app.py on DB ``db`` (at ``page``)."""
    from streamlit.testing.v1 import AppTest

    from helpers import REPO

    app = REPO / "explorer" / "app.py"

    def _open(db, page: str | None = None, timeout: float = 120):
        monkeypatch.setenv("SIDENETS_DB", str(db))
        monkeypatch.delenv("SIDENETS_JOBS", raising=False)
        at = AppTest.from_file(str(app), default_timeout=timeout)
        at.run()
        if page and page != "views/tradeoff.py":  # the default page is already shown
            at.switch_page(page).run()
        return at

    return _open


@pytest.fixture
def engine_groups():
    """engine_groups(db, dataset) -> [(Configuration, [PreparedRun])] computed by the engine alone
    (what the pages must show), for the configurations of ``dataset`` in ``db``."""
    from engine.analysis.configurations import group_runs, select
    from engine.analysis.runs import prepare_run
    from engine.store import Store

    def _groups(db, dataset="fashion-mnist"):
        store = Store(db)
        configs = select(group_runs(store.list_runs()), dataset=dataset)
        prepared = {rid: prepare_run(store, rid) for c in configs for rid in c.run_ids}
        return [(c, [prepared[rid][c.attach] for rid in c.run_ids]) for c in configs]

    return _groups


@pytest.fixture
def three_seeds():
    """Three PreparedRuns of synthetic logits (seeds 0, 1, 2) for the analysis tests."""
    from helpers import prepared_run

    return [prepared_run(s) for s in (0, 1, 2)]
