"""AppTest: the Paper tables page shows Tables 1-4 from the runs in the DB, beside the paper's numbers."""
from engine.analysis import paper
from engine.analysis.tables import table1_ece, table2_mainnet, table3_accuracy, table4_ensemble
from explorer.formatting import pm

from helpers import frame, texts

PAGE = "views/paper.py"


def test_tables_are_the_engines(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    assert not at.exception
    groups = engine_groups(explorer_dbs["many"])
    (row2,) = table2_mainnet(groups)  # the image runs: joint with a SideNet, and mainnet-only
    shown = frame(at, "with SideNet (%)").iloc[0]
    assert shown["MainNet"] == "resnet18"
    assert shown["with SideNet (%)"] == pm(row2["with_sidenet"], unit="")
    assert shown["without SideNet (%)"] == pm(row2["without_sidenet"], unit="")
    assert shown["difference (pts)"] == round(100 * row2["difference"], 2)
    assert shown["seeds (with / without)"] == "3 / 2"
    (row4,) = table4_ensemble([g for g in groups if g[0].has_sidenet])
    shown = frame(at, "Ensemble (%)").iloc[0]
    assert shown["configuration"] == row4["configuration"] and shown["Ensemble (%)"] == pm(row4["ensemble_accuracy"],
                                                                                         unit="")
    (row1,) = table1_ece(groups)
    assert frame(at, "SideNet ECE (%)").iloc[0]["SideNet ECE (%)"] == pm(row1["side_ece_paper"], unit="")
    (row3,) = table3_accuracy(groups)
    assert frame(at, "θ = 0.9").iloc[0]["θ = 0.9"] == pm(row3["accuracy"][-1], digits=1, unit="")
    captions = texts(at.caption)
    w, wo = paper.TABLE2_MAINNET["resnet18"]
    assert f"resnet18: {w[0]} ± {w[1]} with vs {wo[0]} ± {wo[1]} without" in captions


def test_text_runs_and_the_margin_rule(explorer_dbs, open_app, engine_groups):
    at = open_app(explorer_dbs["many"], PAGE)
    at.selectbox(key="dataset").set_value("rt-polarity").run()
    assert not at.exception
    assert any("Table 2 needs" in i.value for i in at.info)  # no mainnet-only text runs
    groups = engine_groups(explorer_dbs["many"], "rt-polarity")
    prob = frame(at, "θ = 0.2").iloc[0]
    assert prob["θ = 0.2"] == prob["θ = 0.4"]  # a binary head: both exit everything under max-prob
    at.radio(key="exit_rule").set_value("margin").run()
    (row3,) = table3_accuracy(groups, rule="margin")
    shown = frame(at, "θ = 0.2").iloc[0]
    assert [shown[f"θ = {t:g}"] for t in row3["thetas"]] == [pm(a, digits=1, unit="") for a in row3["accuracy"]]
