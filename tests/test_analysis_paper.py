"""engine.analysis.paper: the paper's numbers name what the registries and the tables use."""
import pytest

from engine import datasets, mainnets
from engine.analysis import paper, tables


def test_table3_columns_are_the_tables_thetas():
    assert paper.TABLE3_THETAS == tables.PAPER_THETAS
    assert all(len(row) == len(paper.TABLE3_THETAS) for row in paper.TABLE3_DISTILBERT.values())


@pytest.mark.parametrize("table", [paper.TABLE1_ECE, paper.TABLE2_MAINNET, paper.TABLE4_ENSEMBLE])
def test_every_paper_model_is_registered(table):
    for model in table:
        assert model in mainnets.names(), model


def test_values_are_percentages_with_a_spread():
    cells = [cell for table in (paper.TABLE1_ECE, paper.TABLE2_MAINNET, paper.TABLE4_ENSEMBLE)
             for row in table.values() for cell in row] + [c for r in paper.TABLE3_DISTILBERT.values() for c in r]
    assert all(0 <= mean <= 100 and 0 <= std < 5 for mean, std in cells)


def test_stand_ins_are_offline_entries_of_the_same_kind():
    for original, stand_in in paper.STAND_INS.items():
        if original in datasets.names():
            assert datasets.get(stand_in).offline and datasets.get(stand_in).kind == datasets.get(original).kind
            assert datasets.get(stand_in).stand_in_for == original
        else:
            spec, paper_spec = mainnets.get(stand_in), mainnets.get(original)
            assert spec.pretrained == "offline" and paper_spec.pretrained == "online" and spec.kind == paper_spec.kind
