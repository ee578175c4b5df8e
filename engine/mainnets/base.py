"""A MainNet cut into blocks so a SideNet can read x_c after block k without recomputing it.

Every family implements four pieces; everything else (trunk, rest, taps) is shared:
    embed(x)                   input -> state before block 1 (stem / embeddings)
    blocks(state, start, stop) runs blocks start+1..stop (1-based), state -> state
    head(state)                state after the last block -> logits (B, C)
    side_features(state)       state -> (B, F), what a SideNet reads (flattened map / [CLS])
A state is a tensor (B, ...) for images, or a dict of batch-first tensors for text.
"""
from __future__ import annotations

import torch
from torch import nn

from engine.errors import UserError


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

    def head(self, state) -> torch.Tensor:
        raise NotImplementedError

    def side_features(self, state) -> torch.Tensor:
        raise NotImplementedError

    def side_in_features(self, k: int, example_input) -> int:
        """Width of the SideNet input at attach point k, probed on an example batch."""
        with torch.no_grad():
            was = self.training
            self.eval()
            feats = self.side_features(self.trunk(example_input, k))
            self.train(was)
        return feats.shape[1]

    # -- shared -----------------------------------------------------------------------
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


def select(state, index: torch.Tensor):
    """Rows `index` of a state (tensor or dict of batch-first tensors)."""
    if isinstance(state, dict):
        return {key: value[index] for key, value in state.items()}
    return state[index]


def batch_size(state) -> int:
    """Rows of a state (tensor or dict of batch-first tensors)."""
    return len(next(iter(state.values()))) if isinstance(state, dict) else len(state)
