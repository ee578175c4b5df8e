"""How numbers and user text are shown (no Streamlit, no math): mean ± std, costs, escaping."""
from __future__ import annotations

import math

from engine.analysis.summary import MeanStd

COST_NAMES = {"params": "parameters", "macs": "MACs", "ms": "latency"}
SHORT_COST_NAMES = {"params": "params", "macs": "MACs", "ms": "latency"}
EXIT_RULE_NAMES = {"max-prob": "max probability ≥ θ", "margin": "top-1 − top-2 probability ≥ θ"}


def md_escape(text) -> str:
    """Text shown as-is inside Streamlit markdown (never as HTML or formatting)."""
    out = str(text)
    for ch in "\\`*_[]<>#|~$":
        out = out.replace(ch, "\\" + ch)
    return out


def is_nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def signed(x: float, digits: int) -> str:
    """'+1.23', '-0.50', or '±0.00' when it rounds to zero (never '-0.00')."""
    text = f"{x:+.{digits}f}"
    return "±" + text[1:] if float(text) == 0 else text


def pm(value: MeanStd | None, scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    """'87.34% ± 0.41' (mean ± sample std over seeds); no ± with a single run."""
    if value is None or is_nan(value.mean):
        return "–"
    text = f"{value.mean * scale:.{digits}f}{unit}"
    return text + (f" ± {value.std * scale:.{digits}f}" if value.n > 1 and not is_nan(value.std) else "")


def cost_unit(kind: str, max_value: float) -> tuple[float, str]:
    """(divisor, unit) for a cost kind: parameters in M, MACs in M or G, latency in ms."""
    if kind == "params":
        return 1e6, "M params"
    if kind == "macs":
        return (1e9, "G MACs") if max_value >= 1e9 else (1e6, "M MACs")
    return 1.0, "ms"


def fmt_cost(value: float, kind: str, scale: tuple[float, str] | None = None) -> str:
    div, unit = scale or cost_unit(kind, value)
    if is_nan(value):
        return "–"
    v = value / div
    digits = 3 if abs(v) < 1 else 2 if abs(v) < 10 else 1 if abs(v) < 100 else 0
    return f"{v:,.{digits}f} {unit}"
