"""What a browser needs to recompute a page's theta-dependent numbers itself (the explorer's live theta).

Built once per selection from prepared runs; pure numpy; strict JSON (no NaN); arrays travel as
base64 of their little-endian bytes (float64 scores ``f8``, booleans as bits, ``np.packbits``
with ``bitorder="little"``). The browser applies engine.metrics' exit rule to these exact float64
values: a sample exits iff ``score >= theta``, and nothing exits when ``theta >= 1``.

- ``cascade_payload``: per run, the exit scores sorted ascending (stable) and, in that order, which
  samples the SideNet and each fallback get right. With ``k = #(score < theta)`` (a binary search),
  the deferred samples are the first ``k``: ThetaCurve's three counts are ``k``, ``#side - cum_side[k]``
  and ``cum_fallback[k]``.
- ``populations_payload``: per run, in the stored sample order (so that per-bin sums add up in the
  engine's order), the exit score, the top-label confidence and correctness of the SideNet and of
  the fallback: everything ``engine.analysis.calibration.populations_at`` reads.
"""
from __future__ import annotations

import base64
import math

import numpy as np

from engine import metrics
from engine.analysis.runs import PreparedRun
from engine.analysis.summary import cost_kinds

FALLBACKS = ("main", "ensemble")


def f8(values) -> str:
    """Base64 of ``values (N,)`` as little-endian float64."""
    return base64.b64encode(np.ascontiguousarray(values, dtype="<f8").tobytes()).decode("ascii")


def bits(mask) -> str:
    """Base64 of a boolean ``mask (N,)`` packed 8 to a byte, sample i in bit ``i % 8`` of byte ``i // 8``."""
    return base64.b64encode(np.packbits(np.asarray(mask, dtype=bool), bitorder="little").tobytes()).decode("ascii")


def unpack_f8(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f8").astype(np.float64)


def unpack_bits(text: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(base64.b64decode(text), dtype=np.uint8), count=n, bitorder="little").astype(bool)


def number(x) -> float | None:
    """A JSON-safe float (NaN and infinities become None)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _costs(run: PreparedRun, kinds: list[str]) -> dict[str, list]:
    """{kind: [trunk, sidenet, rest, full]} as floats (the exact values for costs below 2**53)."""
    return {k: [number(run.costs[k].trunk), number(run.costs[k].sidenet), number(run.costs[k].rest),
                number(run.costs[k].full)] for k in kinds}


def _check(runs: list[PreparedRun], rule: str) -> None:
    if not runs or not all(r.has_sidenet for r in runs):
        raise ValueError("the live payload needs at least one run, each with a SideNet")
    if rule not in metrics.EXIT_RULES:
        raise ValueError(f"unknown exit rule {rule!r}; choose one of {metrics.EXIT_RULES}")


def cascade_run(run: PreparedRun, rule: str, fallbacks=("main",), kinds: list[str] | None = None) -> dict:
    """One run: ``n``, ``scores`` (f8, ascending), ``side`` and one bits array per fallback ("main",
    "ensemble") in the same order, ``main_accuracy``, ``ensemble_accuracy`` and ``costs``."""
    order = np.argsort(run.side_scores[rule], kind="stable")
    out = {"n": run.n, "scores": f8(run.side_scores[rule][order]), "side": bits(run.side_correct[order]),
           "main_accuracy": number(run.main_accuracy), "ensemble_accuracy": number(run.ensemble_accuracy),
           "costs": _costs(run, kinds if kinds is not None else cost_kinds([run]))}
    for fb in fallbacks:
        if fb not in FALLBACKS:
            raise ValueError(f"unknown fallback {fb!r}; choose from {FALLBACKS}")
        out[fb] = bits(run.fallback(fb == "ensemble")[1][order])
    return out


def cascade_payload(runs: list[PreparedRun], rule: str = "max-prob", fallbacks=("main",)) -> dict:
    """A configuration's runs for the cascade numbers (ThetaCurve.at / summary_at): {"kinds", "runs"}."""
    _check(runs, rule)
    kinds = cost_kinds(runs)
    return {"kinds": kinds, "runs": [cascade_run(r, rule, fallbacks, kinds) for r in runs]}


def populations_payload(runs: list[PreparedRun], rule: str = "max-prob", ensemble: bool = False,
                        n_bins: int | None = None, paper: bool = False) -> dict:
    """A configuration's runs for ``populations_at``: {"edges", "runs"}, each run in sample order with
    ``scores`` (exit rule), ``side_conf`` (top-label; None when it is the scores, i.e. "max-prob"),
    ``fb_conf``, and bits ``side_ok``, ``fb_ok``."""
    _check(runs, rule)
    edges = metrics.reliability(np.zeros(1), np.zeros(1), n_bins=n_bins, paper=paper).edges
    out = []
    for r in runs:
        fb_conf, fb_ok = r.fallback(ensemble)
        same = r.side_scores[rule] is r.side_conf or np.array_equal(r.side_scores[rule], r.side_conf)
        out.append({"n": r.n, "scores": f8(r.side_scores[rule]), "side_conf": None if same else f8(r.side_conf),
                    "fb_conf": f8(fb_conf), "side_ok": bits(r.side_correct), "fb_ok": bits(fb_ok)})
    return {"edges": [float(e) for e in edges], "runs": out}
