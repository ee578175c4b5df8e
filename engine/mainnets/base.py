"""A MainNet cut into blocks so a SideNet can read x_c after block k without recomputing it.

Every family implements five pieces; everything else (trunk, rest, taps, head) is shared:
    embed(x)                   input -> state before block 1 (stem / embeddings)
    blocks(state, start, stop) runs blocks start+1..stop (1-based), state -> state
    pool(state)                state after the last block -> (B, F), what the final head reads
    classifier                 the final head, a SideNet-shaped module (B, F) -> logits (B, C)
    side_features(state)       state -> (B, F_k), what a SideNet reads (flattened map / pooled tokens)
A state is a tensor (B, ...) for images, or a dict of batch-first tensors for text.

`pool` is frozen in head mode (with the whole backbone); only `classifier` and the SideNets
train, which is what the feature cache stores: side_features at each tap and pool's output.

Each family file registers its models with `register(MainNetSpec(...))` (engine.mainnets).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import UserError


@dataclass(frozen=True)
class MainNetSpec:
    """Everything the rest of the engine needs to know about a MainNet, declared beside its code.

    build(cfg, num_classes) -> MainNet gets the resolved TrainConfig whole.
    pretrained: "offline" (weights install with `make setup`), "online" (a download), "none".
    stems / poolings: the choices of `TrainConfig.stem` / `.pooling`, the first is the default.
    num_blocks None: known once the model's config is read (hub encoders, engine.mainnets.text).
    """

    name: str
    kind: str  # "image" | "text"
    attach_prefix: str
    build: Callable
    num_blocks: int | None = None
    default_attach: int = 1
    pretrained: str = "none"
    default_pretrained: bool = False
    image_size: int | None = None  # images: the side the dataset resizes to
    normalize: tuple | None = None  # images: (mean, std) the weights expect; None: the dataset's own
    stems: tuple[str, ...] = ()
    poolings: tuple[str, ...] = ()
    notes: str = ""
    extra: dict = field(default_factory=dict)


class MainNet(nn.Module):
    family: str = ""
    attach_prefix: str = ""  # attach point k is called f"{attach_prefix}{k}"
    num_blocks: int = 0
    default_attach: int = 1

    # -- family-specific --------------------------------------------------------------
    def embed(self, x):
        raise NotImplementedError

    def blocks(self, state, start: int, stop: int):
        raise NotImplementedError

    def pool(self, state) -> torch.Tensor:
        raise NotImplementedError

    def side_features(self, state) -> torch.Tensor:
        raise NotImplementedError

    @property
    def classifier(self) -> nn.Module:
        """The final SideNet-shaped head (a property: the module is registered once, where the
        library's model keeps it, so checkpoints keep the library's key names)."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------
    def head(self, state) -> torch.Tensor:
        """State after the last block -> logits (B, C)."""
        return self.classifier(self.pool(state))

    def side_in_features(self, k: int, example_input) -> int:
        """Width of the SideNet input at attach point k, probed on an example batch."""
        with torch.no_grad():
            was = self.training
            self.eval()
            feats = self.side_features(self.trunk(example_input, k))
            self.train(was)
        return feats.shape[1]

    def attach_names(self) -> list[str]:
        """Valid attach points: after block 1 .. after block num_blocks - 1."""
        return [f"{self.attach_prefix}{k}" for k in range(1, self.num_blocks)]

    def attach_index(self, name: str | int) -> int:
        """'layer1' / 'encoder4' / 'block3' (or the bare number) -> k; clear error when out of range."""
        text = str(name)
        digits = text[len(self.attach_prefix):] if text.startswith(self.attach_prefix) else text
        if not digits.isdigit() or not 1 <= int(digits) < self.num_blocks:
            raise UserError(f"attach point {name!r} is not valid for {self.family}; "
                            f"choose one of: {', '.join(self.attach_names())}")
        return int(digits)

    def trunk(self, x, k: int):
        """input -> x_c, the state after block k."""
        return self.blocks(self.embed(x), 0, k)

    def rest(self, state, k: int) -> torch.Tensor:
        """x_c after block k -> MainNet logits (B, C)."""
        return self.head(self.blocks(state, k, self.num_blocks))

    def forward_taps(self, x, ks: list[int], stop_after_last: bool = False):
        """One pass: (logits or None, {k: x_c}) with x_c taken after each block k in ks."""
        state, done, taps = self.embed(x), 0, {}
        for k in sorted(ks):
            state = self.blocks(state, done, k)
            taps[k], done = state, k
        if stop_after_last:
            return None, taps
        return self.rest(state, done), taps

    def features(self, x, ks: list[int]) -> dict[str, torch.Tensor]:
        """What the heads read, in one pass: {"side<k>": side_features (B, F_k), "head": pool (B, F)}
        (the feature cache's taps)."""
        state, done, out = self.embed(x), 0, {}
        for k in sorted(ks):
            state = self.blocks(state, done, k)
            out[f"side{k}"], done = self.side_features(state), k
        out["head"] = self.pool(self.blocks(state, done, self.num_blocks))
        return out


def select(state, index: torch.Tensor):
    """Rows `index` of a state (tensor or dict of batch-first tensors)."""
    if isinstance(state, dict):
        return {key: value[index] for key, value in state.items()}
    return state[index]


def batch_size(state) -> int:
    """Rows of a state (tensor or dict of batch-first tensors)."""
    return len(next(iter(state.values()))) if isinstance(state, dict) else len(state)
