"""explorer.formatting: how the pages show numbers (mean ± sample std) and user text."""
import math

import pytest

from engine.analysis.summary import MeanStd
from explorer.formatting import cost_unit, fmt_cost, md_escape, pm, signed


def test_pm_shows_the_spread_only_with_several_runs():
    assert pm(MeanStd(0.8736, 0.0041, 3)) == "87.36% ± 0.41"
    assert pm(MeanStd(0.8736, math.nan, 1)) == "87.36%"  # one run: no ± at all
    assert pm(MeanStd(0.5, 0.0, 2), digits=1, unit="") == "50.0 ± 0.0"
    assert pm(MeanStd(0.5, math.nan, 2)) == "50.00%"  # a NaN std is never shown
    assert pm(MeanStd(math.nan, math.nan, 0)) == pm(None) == "–"
    assert pm(MeanStd(2.5, 0.25, 4), scale=1, digits=1, unit=" ms") == "2.5 ms ± 0.2"


def test_signed_never_shows_minus_zero():
    assert signed(1.234, 2) == "+1.23" and signed(-0.5, 2) == "-0.50"
    assert signed(-0.001, 2) == "±0.00" and signed(0.0, 1) == "±0.0"


def test_md_escape_shows_text_as_is():
    assert md_escape("a_b*c [x](y) <b> `c` #1 | $5 ~") == r"a\_b\*c \[x\](y) \<b\> \`c\` \#1 \| \$5 \~"
    assert md_escape(3) == "3"


@pytest.mark.parametrize("kind, largest, unit", [("params", 5e6, "M params"), ("macs", 2e9, "G MACs"),
                                                 ("macs", 5e8, "M MACs"), ("ms", 3.0, "ms")])
def test_cost_units(kind, largest, unit):
    assert cost_unit(kind, largest)[1] == unit


def test_fmt_cost():
    assert fmt_cost(11_689_512, "params") == "11.7 M params" and fmt_cost(1_689_512, "params") == "1.69 M params"
    assert fmt_cost(556_000_000, "macs") == "556 M MACs"
    assert fmt_cost(0.4567, "ms") == "0.457 ms"
    assert fmt_cost(1.5e9, "macs", scale=(1e6, "M MACs")) == "1,500 M MACs"  # one unit for a whole column
    assert fmt_cost(math.nan, "params") == "–"
