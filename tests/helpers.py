"""Helpers shared by the test modules (plain functions; the fixtures are in conftest.py)."""
from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


# -- synthetic logits --------------------------------------------------------------------------
THETAS = [0.0, 0.1, 0.25, 0.5, 0.73, 0.9, 0.999, 1.0]  # the endpoints, a tie-prone 0.5, values off the grid


def make_logits(seed: int, n: int = 400, classes: int = 10, dtype=np.float32):
    """``side (n, C)``, ``main (n, C)`` logits and ``labels (n,)``: random, with a per-sample
    easiness so that both heads are partly right (the MainNet more often than the SideNet)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(classes, size=n)
    onehot = np.eye(classes)[labels]
    easy = rng.gamma(2.0, 1.0, size=(n, 1))
    side = rng.normal(size=(n, classes)) + 2.0 * easy * onehot
    main = rng.normal(size=(n, classes)) + 3.5 * easy * onehot
    return side.astype(dtype), main.astype(dtype), labels


def binary_logits(z) -> np.ndarray:
    """A binary head's stored logits ``[0, z]`` (engine.sidenet.SideNet) of sigmoid logits ``z (N,)``."""
    z = np.asarray(z, dtype=np.float64)
    return np.stack([np.zeros_like(z), z], axis=1)


def analysis_costs():
    """Path costs of a made-up MainNet in parameters and MACs (engine.analysis tests)."""
    from engine.metrics import PathCosts

    return {"params": PathCosts(trunk=1e6, sidenet=0.2e6, rest=10e6), "macs": PathCosts(40e6, 0.2e6, 500e6)}


def prepared_run(seed: int, n: int = 500, classes: int = 10, costs: dict | None = None):
    """(PreparedRun at "layer1", (side, main, labels)) of make_logits(seed): a run without a DB."""
    from engine.analysis.runs import prepare

    side, main, labels = make_logits(seed, n=n, classes=classes)
    run = prepare(labels, main, side, costs or analysis_costs(), run_id=f"r{seed}", seed=seed, attach="layer1")
    return run, (side, main, labels)


def same(a: dict, b: dict) -> bool:
    """Dict equality where NaN equals NaN (an empty population's accuracy)."""
    return a.keys() == b.keys() and all(
        a[k] == b[k] or (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def sample_std(values) -> float:
    """The sample standard deviation (ddof=1), NaN for fewer than two values, by the formula."""
    v = [float(x) for x in values]
    if len(v) < 2:
        return math.nan
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def run_dict(run_id: str, seed: int, model: str = "resnet18", attach=("layer1",), mode: str = "joint",
             status: str = "complete", dataset: str = "fashion-mnist", hidden: int = 32, config: dict | None = None):
    """A run row as Store.list_runs returns it (the fields engine.analysis.configurations reads)."""
    return {"run_id": run_id, "seed": seed, "model": model, "attach": list(attach), "mode": mode, "status": status,
            "dataset": dataset, "sidenet_hidden": hidden, "sidenet_order": "linear-bn-relu", "config": config or {}}


# -- a stored run without training ---------------------------------------------------------------
STORE_META = {"model": "resnet18", "dataset": "fashion-mnist", "mode": "joint", "seed": 0, "attach": ["layer1"],
              "config": {"epochs": 1}, "versions": {"torch": "x"}, "num_classes": 3, "class_names": ["a", "b", "c"]}


def run_payload(n: int = 50, c: int = 3, seed: int = 0):
    """(samples, costs, epochs) for Store.finish_run: random logits of a main head and a SideNet at layer1."""
    rng = np.random.default_rng(seed)
    heads = {"main": rng.normal(size=(n, c)).astype(np.float32), "layer1": rng.normal(size=(n, c)).astype(np.float32)}
    samples = {"test": {"idx": np.arange(n), "label": rng.integers(0, c, n), "heads": heads}}
    costs = {"layer1": {p: {"params": 10, "macs": 20.0} for p in ("trunk", "sidenet", "rest", "full")}}
    epochs = [{"epoch": 1, "lr": 3e-4, "train_loss": 1.0, "val_loss": 0.9, "val_acc": {"main": 0.5}, "seconds": 1.0}]
    return samples, costs, epochs


V1_RUNS = {  # run_id: (model, config, checkpoint relative to the DB folder or absolute)
    "r18": ("resnet18", {"model": "resnet18", "patience": 5, "lr": 3e-4}, "inside"),
    "eff": ("efficientnet-lite0", {"model": "efficientnet-lite0", "patience": 2}, "outside"),
    "mini": ("minilm-l6", {"model": "minilm-l6"}, None),
    "bert": ("distilbert-base-uncased", {"model": "distilbert-base-uncased", "stem": None}, None),
    "sgd": ("resnet50", {"model": "resnet50", "stem": "paper", "patience": 3, "schedule": "onecycle"}, None),
}


def make_v1(db: Path, outside: Path) -> Path:
    """A DB file as the code before schema versions wrote it (engine.store.schema.TABLES without
    `meta`), holding V1_RUNS with their checkpoints stored as absolute paths (inside the DB's folder,
    or in ``outside``)."""
    import duckdb

    from engine.store import schema

    db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db))
    for name, columns in schema.TABLES.items():
        if name != "meta":
            con.execute(f"CREATE TABLE {name} ({columns})")
    for run_id, (model, config, where) in V1_RUNS.items():
        ckpt = {"inside": str(db.parent / "checkpoints" / f"{run_id}.safetensors"),
                "outside": str(outside / f"{run_id}.safetensors"), None: None}[where]
        con.execute("INSERT INTO runs (run_id, status, model, config, checkpoint) VALUES (?, 'complete', ?, ?, ?)",
                    [run_id, model, json.dumps(config), ckpt])
    con.close()
    return db


def copy_db(source: Path, target: Path) -> Path:
    """Copy a DuckDB file (and its write-ahead log, if any) so that a test may change the copy."""
    shutil.copy(source, target)
    wal = Path(f"{source}.wal")
    if wal.exists():
        shutil.copy(wal, f"{target}.wal")
    return target


# -- images --------------------------------------------------------------------------------------
def png_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    """The bytes of ``img`` saved as ``fmt`` (an upload)."""
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def odd_rgba(height: int = 37, width: int = 53, alpha: int | None = 200, seed: int = 0) -> Image.Image:
    """A random RGBA image of an odd size; ``alpha`` None: a random alpha channel too."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    if alpha is not None:
        arr[..., 3] = alpha
    return Image.fromarray(arr, "RGBA")


# -- strict JSON and the CLI ---------------------------------------------------------------------
def _no_constant(name: str):
    raise ValueError(f"not strict JSON: {name}")


def strict_json(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (what Python's json would accept)."""
    return json.loads(text, parse_constant=_no_constant)


def cli(*args, db=None, check: bool = False, timeout: float = 300, env: dict | None = None):
    """`python -m engine ARGS` in a subprocess, as a user runs it (offline hub, SIDENETS_DB=db)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    if db:
        full_env["SIDENETS_DB"] = str(db)
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


# -- the job queue -------------------------------------------------------------------------------
def wait_job(queue, job_id: str, until=lambda j: j["state"] in ("done", "failed", "cancelled"),
             timeout: float = 300.0, watch=None) -> dict:
    """Poll a job every 50 ms (calling ``watch`` on each poll) until ``until(job)``; fail with its log."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = queue.job(job_id)
        if watch is not None:
            watch(job)
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {queue.job(job_id)['state']} after {timeout} s:\n{queue.log(job_id)}")


def stop_queue(queue, timeout: float = 60.0) -> None:
    """Cancel what is queued or running and wait for the worker to exit (kill it if it is stuck):
    a test never leaves a training process behind."""
    for job in queue.jobs():
        if job["state"] in ("queued", "running"):
            queue.cancel(job["job_id"])
    end = time.monotonic() + timeout
    while queue.worker_alive() and time.monotonic() < end:
        time.sleep(0.2)
    pid_file = queue.dir / "worker.pid"
    if queue.worker_alive() and pid_file.exists():
        os.kill(int(pid_file.read_text()), signal.SIGTERM)


# -- Streamlit AppTest ---------------------------------------------------------------------------
def frame(at, column: str):
    """The first dataframe shown that has ``column``."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def metric_values(at) -> dict:
    """{label: value} of the page's st.metric elements."""
    return {m.label: m.value for m in at.metric}


def metric_deltas(at) -> dict:
    """{label: delta} of the page's st.metric elements."""
    return {m.label: m.delta for m in at.metric}


def chart_spec(at, index: int = 0) -> dict:
    """The Plotly figure of the page's ``index``-th chart."""
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def live_view(at) -> dict:
    """The ``view`` the page gave its live θ control (explorer.components.live_theta) on the last run:
    labels, columns, the chart's figure and ``expect``, what the engine shows at the session's θ
    (the browser redraws the same numbers while θ moves, and checks them against these)."""
    (element,) = [e for e in at.get("bidi_component") if e.proto.component_name == "sidenets.live_theta"]
    data = json.loads(element.proto.json or element.proto.mixed.json)
    return {**data["view"], "theta": data["theta"]}


def live_cards(at) -> dict:
    """{label: (value, delta)} of the live θ control's metric cards."""
    return {label: (value, delta) for label, value, delta in live_view(at)["expect"]["cards"]}


def live_table(at):
    """The live θ control's table at θ as a DataFrame of strings (what the page shows)."""
    import pandas as pd

    view = live_view(at)
    return pd.DataFrame(view["expect"]["rows"], columns=view["columns"])


def set_theta(at, theta: float):
    """What the live θ control does when the user releases it: the session's θ, then a rerun."""
    at.session_state["theta"] = theta
    return at.run()


def fixed(x: float, digits: int = 2) -> str:
    """A table cell at θ: two decimals, "–" for NaN (the std of one run)."""
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def texts(elements) -> str:
    """The values of a list of elements (at.error, at.info, ...) in one string."""
    return " ".join(str(e.value) for e in elements)


def by_prefix(widgets, prefix: str):
    """The first widget whose key starts with ``prefix`` (keys that embed a run id or a page)."""
    return next(w for w in widgets if (w.key or "").startswith(prefix))
