"""engine.model: a MainNet with its SideNets; freezing, what a checkpoint keeps, cached-feature heads."""
import pytest
import torch

from engine.config import TrainConfig
from engine.mainnets import build_mainnet
from engine.model import SideNetModel, classifier_prefix


@pytest.fixture
def model():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    net = build_mainnet(TrainConfig(model="resnet18").resolved(), 10)
    return SideNetModel(net, [3, 1], 10, x, hidden=16), x


def test_forward_gives_the_main_and_every_sidenet(model):
    m, x = model
    m.eval()
    assert m.attach == [1, 3] and set(m.sidenets) == {"1", "3"}
    with torch.no_grad():
        main, side = m(x)
        assert torch.equal(main, m.mainnet(x)) and set(side) == {1, 3}
        for k in (1, 3):
            want = m.sidenets[str(k)](m.mainnet.side_features(m.mainnet.trunk(x, k)))
            assert torch.equal(side[k], want) and side[k].shape == (4, 10)
        assert m.sidenets["1"].mlp[0].in_features == 64 * 16 * 16  # probed on the example batch
        feats = m.mainnet.features(x, m.attach)
        f_main, f_side = m.forward_features(feats)
        torch.testing.assert_close(f_main, main)
        assert all(torch.equal(f_side[k], side[k]) for k in (1, 3))
        none, _ = m.forward_features(feats, need_main=False)
        assert none is None


def test_frozen_mode_trains_only_the_sidenets(model):
    m, x = model
    m.freeze("frozen")
    m.train()
    assert not m.mainnet.training and m.sidenets.training  # BatchNorm statistics of the MainNet stay
    assert not any(p.requires_grad for p in m.mainnet.parameters())
    assert all(p.requires_grad for p in m.sidenets.parameters())
    main, side = m(x, need_main=False)
    assert main is None and set(side) == {1, 3}  # the rest of the MainNet is skipped
    assert set(m.trained_state()) == {k for k in m.state_dict() if k.startswith("sidenets.")}


def test_head_mode_trains_the_final_head_too(model):
    m, _ = model
    m.freeze("head")
    m.train()
    assert not m.mainnet.training and m.mainnet.classifier.training
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in m.named_parameters() if n.startswith(("sidenets.", "mainnet.net.fc."))}
    kept = set(m.trained_state())
    assert kept == {k for k in m.state_dict() if k.startswith(("sidenets.", "mainnet.net.fc."))}
    m.eval()
    assert not m.mainnet.classifier.training


def test_an_unfrozen_model_keeps_everything(model):
    m, _ = model
    assert m.trained_state().keys() == m.state_dict().keys()


def test_classifier_prefix(model):
    m, _ = model
    assert classifier_prefix(m.mainnet) == "net.fc."

    class Detached(torch.nn.Module):
        classifier = torch.nn.Linear(1, 1)  # a head that is not registered inside the network

    with pytest.raises(ValueError, match="not one of its modules"):
        classifier_prefix(Detached())
