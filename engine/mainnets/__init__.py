"""The MainNet registry: each family file declares its models once, beside its code.

    from engine.mainnets import get, names, build_mainnet
    spec = get("resnet18")                  # MainNetSpec: kind, attach prefix, stems, weights, ...
    net = build_mainnet(cfg, num_classes)    # cfg: a resolved TrainConfig, passed whole

Any other name with a "/" or a "-" is taken as a Hugging Face encoder id (text, online weights).
Adding a family: one file that calls `register` (and its import below).
"""
from __future__ import annotations

from engine.errors import UserError
from engine.mainnets.base import MainNet, MainNetSpec, batch_size, select

_REGISTRY: dict[str, MainNetSpec] = {}


def register(spec: MainNetSpec) -> MainNetSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"MainNet {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def names(kind: str | None = None) -> list[str]:
    """Registered MainNets (of one kind: "image" / "text"), in registration order."""
    return [n for n, s in _REGISTRY.items() if kind is None or s.kind == kind]


def get(name: str) -> MainNetSpec:
    """The spec of a registered MainNet, or of a Hugging Face encoder id; UserError otherwise."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if isinstance(name, str) and ("/" in name or "-" in name) and not name.startswith(("resnet", "efficientnet")) \
            and not name.startswith(("/", ".", "~")):
        return text.hub_spec(name)
    raise UserError(f"unknown model {name!r}; choose one of: {', '.join(names())} or a Hugging Face encoder id")


def attach_names(name: str) -> list[str]:
    """Valid attach points of a model, without building it (validates configs up front)."""
    spec = get(name)
    n = spec.num_blocks or text.num_layers(name)
    return [f"{spec.attach_prefix}{k}" for k in range(1, n)]


def build_mainnet(cfg, num_classes: int) -> MainNet:
    """The MainNet of a resolved TrainConfig (the config flows whole into the family's builder)."""
    return get(cfg.model).build(cfg, num_classes)


# the families (each registers its models on import)
from engine.mainnets import efficientnet, resnet, text  # noqa: E402

__all__ = ["MainNet", "MainNetSpec", "attach_names", "batch_size", "build_mainnet", "efficientnet", "get", "names",
           "register", "resnet", "select", "text"]
