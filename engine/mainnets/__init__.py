"""The MainNet registry: a name -> a MainNet cut into blocks (one file per family)."""
from __future__ import annotations

from engine.errors import UserError
from engine.mainnets import efficientnet, resnet, text
from engine.mainnets.base import MainNet, batch_size, select

IMAGE_MODELS = [f"resnet{d}" for d in resnet.DEPTHS] + ["efficientnet-lite0"]
TEXT_MODELS = ["minilm-l6", "mpnet-base", "distilbert-base-uncased", "bert-base-uncased", "bert-large-uncased"]


def model_kind(name: str) -> str:
    """'image' or 'text'; any other name is taken as a Hugging Face encoder id (text)."""
    if name in IMAGE_MODELS:
        return "image"
    if name.startswith(("resnet", "efficientnet")):
        raise UserError(f"unknown model {name!r}; image models: {', '.join(IMAGE_MODELS)}")
    if "/" not in name and "-" not in name:
        raise UserError(f"unknown model {name!r}; choose one of: {', '.join(IMAGE_MODELS + TEXT_MODELS)} "
                        "or a Hugging Face encoder id")
    return "text"


def build_mainnet(name: str, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu",
                  pretrained: bool | None = None) -> MainNet:
    """pretrained=None: the default of the family (ImageNet/hub weights where they install offline)."""
    kind = model_kind(name)
    if name.startswith("resnet"):
        return resnet.build(name, num_classes, hidden, order, bool(pretrained))
    if name == "efficientnet-lite0":
        return efficientnet.build(name, num_classes, hidden, order, pretrained is not False)
    assert kind == "text"
    return text.build(name, num_classes, hidden, order, pretrained is not False)


def attach_names(name: str) -> list[str]:
    """Valid attach points of a model, without building it (validates configs up front)."""
    if name.startswith("resnet"):
        return [f"layer{k}" for k in range(1, resnet.ResNetMainNet.num_blocks)]
    if name == "efficientnet-lite0":
        return [f"block{k}" for k in range(1, efficientnet.EfficientNetLite0.num_blocks)]
    return [f"encoder{k}" for k in range(1, text.num_layers(name))]


def image_settings(name: str) -> dict:
    """The input size / normalisation a vision MainNet wants from the dataset loader."""
    if name == "efficientnet-lite0":
        return {"image_size": efficientnet.IMAGE_SIZE, "normalize": efficientnet.NORMALIZE}
    return {"image_size": 32, "normalize": None}


__all__ = ["MainNet", "batch_size", "select", "build_mainnet", "model_kind", "image_settings", "attach_names", "IMAGE_MODELS", "TEXT_MODELS"]
