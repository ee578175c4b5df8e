"""engine.analysis.report: the tables' numbers equal an independent recomputation from `engine
export` (Parquet per run, recomputed here with plain numpy), the files are written, REPRODUCTION.md
names every table, figure and textual claim."""
from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from engine.analysis.report import write_report
from engine.cli import main
from engine.errors import UserError
from engine.store import Store

CELL = re.compile(r"^(-?[\d.]+)(?: ± ([\d.]+))? \(n=(\d+)\)$")


def _export(store: Store, run_id: str, tmp_path) -> dict:
    """{split: {head: (logits (N, C), labels (N,))}} read back from `python -m engine export`."""
    out = tmp_path / f"{run_id}.parquet"
    assert main(["--db", str(store.path), "export", run_id, "--out", str(out)]) == 0
    t = pq.read_table(out).to_pandas()
    res = {}
    for (split, head), g in t.groupby(["split", "head"]):
        g = g.sort_values("idx")
        res.setdefault(split, {})[head] = (np.stack(g["logits"].to_numpy()).astype(np.float64), g["label"].to_numpy())
    return res


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _ece_paper(p, right) -> float:
    """The paper's 8 bins [0.2, 0.3), ..., [0.9, 1.0], below 0.2 in the first: written out loop by loop."""
    conf = p.max(1)
    total = 0.0
    for b in range(8):
        lo, hi = 0.2 + b / 10, 0.3 + b / 10
        inside = (conf >= lo if b else np.ones_like(conf, bool)) & ((conf < hi) if b < 7 else (conf <= 1.0))
        if inside.any():
            total += inside.sum() / len(conf) * abs(right[inside].mean() - conf[inside].mean())
    return 100 * total


def _cell(text: str) -> tuple[float, float | None, int]:
    m = CELL.match(text)
    assert m, text
    return float(m.group(1)), (float(m.group(2)) if m.group(2) else None), int(m.group(3))


def _check(cell: str, values, digits: int = 2) -> None:
    mean, std, n = _cell(cell)
    v = np.asarray(values, dtype=np.float64)
    assert n == len(v) and mean == pytest.approx(round(v.mean(), digits), abs=1.01 * 10 ** -digits)
    if n > 1:
        assert std == pytest.approx(round(v.std(ddof=1), digits), abs=1.01 * 10 ** -digits)


@pytest.fixture(scope="module")
def report(explorer_dbs, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    shutil.copy(explorer_dbs["many"], tmp / "many.duckdb")
    store = Store(tmp / "many.duckdb")
    written = write_report(store, out=tmp / "out", reproduction=tmp / "REPRODUCTION.md")
    rows = {name: list(csv.reader(open(tmp / "out" / f"{name}.csv"))) for name in ("table1", "table2", "table3", "table4")}
    exports = {r["run_id"]: _export(store, r["run_id"], tmp) for r in store.list_runs()}
    return {"store": store, "written": written, "rows": rows, "exports": exports, "tmp": tmp}


def _runs(report, model, mode="joint"):
    return [r for r in report["store"].list_runs() if r["model"] == model and r["mode"] == mode]


def test_files(report):
    names = {p.name for p in report["written"]}
    for stem in ("table1", "table2", "table3", "table4"):
        assert {f"{stem}.md", f"{stem}.csv"} <= names
    for stem in ("figure2-fashion-mnist", "figure4-rt-polarity", "figure3-fashion-mnist", "figure3-rt-polarity"):
        assert {f"{stem}.png", f"{stem}.html"} <= names
        if stem.endswith(".png"):
            assert (report["tmp"] / "out" / stem).stat().st_size > 10_000
    assert (report["tmp"] / "out" / "plotly.min.js").exists()  # the HTML needs nothing from the internet
    readme = (report["tmp"] / "out" / "README.md").read_text()
    assert all(r["run_id"] in readme for r in report["store"].list_runs())


def test_table4_and_table1_equal_a_recomputation(report):
    joint = _runs(report, "resnet18")
    acc = {h: [] for h in ("main", "side", "ens")}
    ece = {"side": [], "main": []}
    for r in joint:
        ex = report["exports"][r["run_id"]]["test"]
        (main, y), (side, _) = ex["main"], ex[r["attach"][0]]
        acc["main"].append(100 * np.mean(main.argmax(1) == y))
        acc["side"].append(100 * np.mean(side.argmax(1) == y))
        acc["ens"].append(100 * np.mean((main + side).argmax(1) == y))
        ece["side"].append(_ece_paper(_softmax(side), side.argmax(1) == y))
        ece["main"].append(_ece_paper(_softmax(main), main.argmax(1) == y))
    row4 = next(r for r in report["rows"]["table4"][1:] if r[1].startswith("resnet18"))
    for cell, head in zip(row4[2:5], ("main", "side", "ens")):
        _check(cell, acc[head])
    row1 = next(r for r in report["rows"]["table1"][1:] if r[1].startswith("resnet18"))
    _check(row1[2], ece["side"])
    _check(row1[3], ece["main"])
    assert row1[4:6] == ["0.31 ± 0.08", "1.0 ± 0.05"]  # the paper's Table 1 beside ours


def test_table3_equals_a_recomputation_under_both_exit_rules(report):
    thetas = (0.2, 0.4, 0.6, 0.8, 0.9)
    for model in ("resnet18", "minilm-l6"):
        runs = _runs(report, model)
        for rule in ("max-prob", "margin"):
            per_run = []
            for r in runs:
                ex = report["exports"][r["run_id"]]["test"]
                (main, y), (side, _) = ex["main"], ex[r["attach"][0]]
                p = np.sort(_softmax(side), axis=1)
                score = p[:, -1] if rule == "max-prob" else p[:, -1] - p[:, -2]
                per_run.append([100 * np.mean(np.where(score >= t, side.argmax(1), main.argmax(1)) == y) for t in thetas])
            row = next(x for x in report["rows"]["table3"][1:] if x[1].startswith(model) and x[2] == rule)
            for i, cell in enumerate(row[3:8]):
                _check(cell, [v[i] for v in per_run], digits=1)
    binary = {x[2]: x[3:5] for x in report["rows"]["table3"][1:] if x[1].startswith("minilm-l6")}
    assert binary["max-prob"][0] == binary["max-prob"][1]  # theta 0.2 and 0.4 both exit everything


def test_table2_pairs_with_and_without_sidenet(report):
    row = next(r for r in report["rows"]["table2"][1:] if r[1].startswith("resnet18"))
    w = [100 * np.mean(report["exports"][r["run_id"]]["test"]["main"][0].argmax(1)
                       == report["exports"][r["run_id"]]["test"]["main"][1]) for r in _runs(report, "resnet18")]
    wo = [100 * np.mean(report["exports"][r["run_id"]]["test"]["main"][0].argmax(1)
                        == report["exports"][r["run_id"]]["test"]["main"][1])
          for r in _runs(report, "resnet18", "mainnet-only")]
    _check(row[2], w)
    _check(row[3], wo)
    assert float(row[4]) == pytest.approx(np.mean(w) - np.mean(wo), abs=0.006)
    assert row[5:7] == ["92.3 ± 0.1", "92.1 ± 0.1"]


def test_reproduction_covers_every_table_figure_and_claim(report):
    text = (report["tmp"] / "REPRODUCTION.md").read_text()
    for name in ("Table 1", "Table 2", "Table 3", "Table 4", "Figure 2", "Figure 3", "Figure 4", "DistilBERT",
                 "frozen MainNet", "calibrated"):
        assert name in text, name
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| claim")]
    verdicts = [line.split(" | ")[3] for line in rows]
    assert all(v.startswith(("holds", "does not hold", "inconclusive", "missing", "not comparable")) for v in verdicts)
    assert "missing" in " ".join(verdicts)  # Table 3 and the frozen remark have no runs in this DB


def test_bad_outputs_are_one_line_errors(report, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file; give a folder"):
        write_report(report["store"], out=tmp_path / "file")
    with pytest.raises(UserError, match="no complete runs for cifar10"):
        write_report(report["store"], out=tmp_path / "o", dataset=["cifar10"])
    for bad in (tmp_path / "no-such-folder" / "R.md", tmp_path):  # refused before any work
        with pytest.raises(UserError, match=f"--reproduction {bad}: give a file in an existing folder"):
            write_report(report["store"], out=tmp_path / "o2", reproduction=bad)
        assert not (tmp_path / "o2").exists()
