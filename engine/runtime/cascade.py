"""The cascade runtime: a real early exit that skips the MainNet's `rest` for confident inputs.

    cascade = Cascade(model, attach=1, theta=0.9)        # model: a SideNetModel (eval mode)
    out = cascade(x)                                       # x: a collated batch on the model's device
    out.pred, out.exited, out.side_conf, out.logits       # (B,), (B,) bool, (B,), (B, C), input order

One batch:
    x_c  = trunk(x, k)                          all B samples
    side = SideNet(side_features(x_c))          all B samples
    exit = conf(side) >= theta                  (theta >= 1: never exit)
    idx  = nonzero(~exit)                       the ONE host synchronisation of the batch
    main = rest(select(x_c, idx), k)            only the deferred samples, from the same x_c
    logits = side with main scattered back at idx   (input order kept)

No Python loop over samples, no `.item()`; a batch whose samples all exit never enters `rest`,
and one whose samples all defer skips the gather. The exit rule and confidence are those of
engine.metrics (top-label softmax probability, computed in float64, `conf >= theta`, theta >= 1
means "never exit"), so the answers equal the cached-logit computation (ThetaCurve).

On CUDA, image MainNets run their fixed-shape pieces (trunk + SideNet + confidence, rest, the
full MainNet) as CUDA graphs (engine.runtime.cuda_graphs): eager PyTorch is launch-bound there at
serving batch sizes, and the early exit would save MACs that were not the bottleneck. The
deferred rows are padded to a power of two (repeating a row) so that few graphs get captured.

`Cascade.stream(batches)` is the throughput mode: deferred samples of consecutive batches are
pooled so that `rest` runs on full batches (same answers, still one synchronisation per batch).

`auto_theta` picks the threshold of `--theta auto`: the largest exit on the validation split
that costs at most 0.5 accuracy points against the MainNet alone.
"""
from __future__ import annotations

import contextlib
import itertools
from collections import deque
from dataclasses import dataclass

import torch

from engine.config import AMP_CHOICES
from engine.errors import UserError
from engine.mainnets import batch_size, select
from engine.mainnets.text import TextEncoderMainNet
from engine.metrics import EXIT_RULES, auto_theta
from engine.model import SideNetModel
from engine.runtime.cuda_graphs import GraphCache, bucket
from engine.runtime.device import amp_dtype


@dataclass
class CascadeOutput:
    """One batch's answers, in input order (tensors on the model's device).

    pred (B,) int64; exited (B,) bool (True: the SideNet answered); side_conf (B,) float64;
    logits (B, C) float32, the logits of the head that answered; side_logits (B, C) float32;
    n_deferred: how many samples went through `rest`.
    """

    pred: torch.Tensor
    exited: torch.Tensor
    side_conf: torch.Tensor
    logits: torch.Tensor
    side_logits: torch.Tensor
    n_deferred: int


def confidence(logits: torch.Tensor, rule: str = "max-prob") -> torch.Tensor:
    """The exit rule's score (B,) in float64 of (B, C) logits, on their device: the top-label
    softmax probability ("max-prob") or top-1 minus top-2 probability ("margin").

    The values engine.metrics computes (float64, to the last bit or two), so a sample exits here
    exactly when it exits in the cached-logit computation. A few kernels: the hot path runs it on
    every batch.
    """
    p = torch.softmax(logits.double(), dim=1)
    if rule == "max-prob":
        return p.amax(dim=1)
    top2 = p.topk(2, dim=1).values
    return top2[:, 0] - top2[:, 1]


def confidence_and_prediction(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(confidence (B,) float64, argmax (B,)) of (B, C) logits (first index on exact ties, like numpy)."""
    return confidence(logits), logits.argmax(dim=1)


def is_image_model(model: SideNetModel) -> bool:
    return not isinstance(model.mainnet, TextEncoderMainNet)


def prepare(model: SideNetModel, channels_last: bool | None = None) -> SideNetModel:
    """Eval mode, and channels_last weights for image MainNets (None: when it is an image model).

    Gathering deferred rows (`x_c[idx]`) keeps the channels_last layout, so `rest` gets it too.
    """
    model.eval()
    if channels_last is None:
        channels_last = is_image_model(model)
    if channels_last and not getattr(model, "_channels_last", False):  # once: models are shared (demo cache)
        model.to(memory_format=torch.channels_last)
        model._channels_last = True
    return model


_NO_AUTOCAST = contextlib.nullcontext()


class Cascade:
    """A SideNetModel's MainNet with its SideNet at attach point k, exiting at theta.

    attach: k (int), an attach name ("layer1", "encoder1") or None for the model's first one.
    amp: "auto" (bf16 autocast on CUDA, none on CPU, like training/evaluation), "bf16" or "none".
    channels_last: None = yes for image MainNets (measured on this 2-core CPU: the MainNet runs
    ~1.3x faster at batch 1 and ~1.6x at batch 64; training uses it on CUDA), False = leave as is.
    cuda_graphs: None = on for image MainNets on CUDA (the baseline `full` is graphed too, so the
    comparison stays fair), True / False to force (True needs CUDA and an image MainNet: text
    encoders build their attention mask with a host synchronisation, which a graph cannot hold).
    The model is put in eval mode (the SideNet's BatchNorm must use its running statistics) and
    is shared, not copied: the full-MainNet baseline runs the very same module.
    """

    def __init__(self, model: SideNetModel, attach: int | str | None = None, theta: float = 0.9,
                 amp: str = "auto", channels_last: bool | None = None, cuda_graphs: bool | None = None,
                 exit_rule: str = "max-prob"):
        if not model.attach:
            raise UserError("this model has no SideNet (a mainnet-only run): there is no early exit")
        prepare(model, channels_last)
        self.model, self.net = model, model.mainnet
        self.k = model.attach[0] if attach is None else self.net.attach_index(attach)
        if self.k not in model.attach:
            raise UserError(f"the model has no SideNet at {self.net.attach_names()[self.k - 1]}; "
                            f"it has: {', '.join(self.net.attach_names()[k - 1] for k in model.attach)}")
        self.attach_name = self.net.attach_names()[self.k - 1]
        self.sidenet = model.sidenets[str(self.k)]
        self.theta = theta
        if exit_rule not in EXIT_RULES:
            raise UserError(f"unknown exit rule {exit_rule!r}; choose one of: {', '.join(EXIT_RULES)}")
        self.exit_rule = exit_rule  # fixed for the Cascade's life: the CUDA graphs compute its score
        image, cuda = is_image_model(model), self.device.type == "cuda"
        if cuda_graphs and not (image and cuda):
            raise UserError("CUDA graphs need a CUDA device and an image MainNet")
        self.cuda_graphs = image and cuda if cuda_graphs is None else cuda_graphs
        eager = {"front": self._front_eager, "rest": self._rest_eager, "full": self._full_eager}
        self._pieces = {name: GraphCache(fn) for name, fn in eager.items()} if self.cuda_graphs else eager
        self.amp = amp  # resolved against the model's device now: build the Cascade after moving the model

    # -- settings -----------------------------------------------------------------------
    @property
    def theta(self) -> float:
        return self._theta

    @theta.setter
    def theta(self, value: float) -> None:
        value = float(value)
        if not 0.0 <= value <= 1.0:  # NaN fails too
            raise UserError(f"theta must be in [0, 1], got {value}")
        self._theta = value

    @property
    def amp(self) -> str:
        return self._amp

    @amp.setter
    def amp(self, value: str) -> None:
        if value not in AMP_CHOICES:
            raise UserError(f"unknown amp {value!r}; choose {', '.join(AMP_CHOICES)}")
        self._amp = value
        self._autocast_args = (self.device.type, amp_dtype(self.device, value))  # the training/evaluation rule
        for piece in self._pieces.values():
            if isinstance(piece, GraphCache):
                piece.clear()  # captured under the old setting

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _autocast(self):
        """bf16 autocast when on, else a shared no-op context (no per-call autocast object)."""
        device_type, dtype = self._autocast_args
        return _NO_AUTOCAST if dtype is None else torch.autocast(device_type, dtype=dtype)

    # -- the pieces (also what engine.runtime.latency times) ------------------------------------
    def _front_eager(self, x):
        with self._autocast():
            x_c = self.net.trunk(x, self.k)
            side = self.sidenet(self.net.side_features(x_c))
        side = side.float()
        return x_c, side, confidence(side, self.exit_rule)

    def _rest_eager(self, x_c) -> torch.Tensor:
        with self._autocast():
            return self.net.rest(x_c, self.k).float()

    def _full_eager(self, x) -> torch.Tensor:
        with self._autocast():
            return self.net(x).float()

    def front(self, x):
        """trunk + SideNet + exit decision on all samples: (x_c, side_logits float32, conf, exited).

        The exit decision stays outside the CUDA graph, so changing theta needs no new capture.
        """
        x_c, side, conf = self._pieces["front"](x)
        exited = conf >= self._theta if self._theta < 1.0 else torch.zeros_like(conf, dtype=torch.bool)
        return x_c, side, conf, exited

    def rest(self, x_c) -> torch.Tensor:
        """x_c (already regrouped) -> MainNet logits, float32."""
        return self._pieces["rest"](x_c)

    @torch.inference_mode()
    def full(self, x) -> torch.Tensor:
        """The MainNet alone (its unsplit forward), float32 logits: the baseline, and the demo's
        'what would the MainNet say'."""
        return self._pieces["full"](x)

    def _rest_rows(self, state, index: torch.Tensor | None = None) -> torch.Tensor:
        """MainNet logits (n, C) of rows `index` of a state (None: all its rows). With CUDA graphs
        the rows are padded to a power of two by repeating the first one (few graphs to capture)."""
        n = batch_size(state) if index is None else index.numel()
        if self.cuda_graphs and bucket(n) > n:
            index = torch.arange(n, device=self.device) if index is None else index
            index = torch.cat([index, index[:1].expand(bucket(n) - n)])
        logits = self.rest(state if index is None else select(state, index))
        return logits[:n]

    # -- the cascade --------------------------------------------------------------------
    @torch.inference_mode()
    def __call__(self, x) -> CascadeOutput:
        x_c, side, conf, exited = self.front(x)
        deferred = torch.nonzero(~exited).squeeze(1)  # the one host synchronisation of the batch
        n, b = deferred.numel(), exited.numel()
        if n == 0:
            logits = side
        elif n == b:
            logits = self._rest_rows(x_c)  # everything defers: no gather, no scatter
        else:
            logits = side.index_copy(0, deferred, self._rest_rows(x_c, deferred))  # answers back in input order
        return CascadeOutput(pred=logits.argmax(dim=1), exited=exited, side_conf=conf, logits=logits,
                             side_logits=side, n_deferred=n)

    def stream(self, batches, pool: int | None = None):
        """One CascadeOutput per batch of `batches`, in order, with deferred samples POOLED across
        batches: `rest` runs once at least `pool` deferred samples wait (default: the first batch's
        size), and on what is left at the end. Throughput mode: `rest` always gets full batches
        (a convolution at 1x1 / 2x2 maps costs about the same for 25 samples as for 64), at the
        price of latency (a batch is answered when its deferred samples have been through `rest`).
        The host also runs one batch ahead: batch i+1's trunk + SideNet is queued before the host
        waits for batch i's exit mask, so on CUDA the GPU does not idle during that wait.
        Still one host synchronisation per batch; answers equal those of `__call__`.
        """
        waiting: deque[_Pending] = deque()
        pooled: list[tuple[_Pending, object]] = []
        pooled_n, ahead = 0, None  # ahead: the launched batch whose exit mask is on its way to the host
        for x in itertools.chain(batches, [None]):
            with torch.inference_mode():
                launched = None if x is None else self._launch(x)
                if ahead is not None:
                    item, rows = self._settle(*ahead)
                    waiting.append(item)
                    if item.n:
                        pooled.append((item, rows))
                        pooled_n += item.n
                    pool = pool or item.exited.numel()
                    if pooled_n >= pool or (launched is None and pooled):
                        self._rest_pooled(pooled)
                        pooled, pooled_n = [], 0
                ahead = launched
            while waiting and waiting[0].done:
                yield waiting.popleft().output()

    def _launch(self, x) -> tuple:
        """Queue trunk + SideNet for x, and (on CUDA) the copy of its exit mask to the host."""
        x_c, side, conf, exited = self.front(x)
        if not exited.is_cuda:
            return x_c, side, conf, exited, exited, None
        mask = exited.to("cpu", non_blocking=True)  # into pinned memory, ready when `ready` fires
        ready = torch.cuda.Event()
        ready.record()
        return x_c, side, conf, exited, mask, ready

    def _settle(self, x_c, side, conf, exited, mask, ready) -> tuple[_Pending, object]:
        """Wait for a launched batch's exit mask (the one host synchronisation of the batch):
        (its _Pending, its deferred rows of x_c, regrouped)."""
        if ready is not None:
            ready.synchronize()
        deferred = torch.nonzero(~mask).squeeze(1).to(exited.device, non_blocking=True)
        n, b = deferred.numel(), exited.numel()
        return _Pending(side, conf, exited, deferred, n, done=n == 0), x_c if n in (0, b) else select(x_c, deferred)

    def _rest_pooled(self, pooled: list) -> None:
        """rest on the concatenated deferred rows of several batches; answers back to each batch."""
        main = self._rest_rows(concat_states([rows for _, rows in pooled]))
        for (item, _), part in zip(pooled, main.split([item.n for item, _ in pooled])):
            item.logits = part if item.n == item.exited.numel() else item.side.index_copy(0, item.deferred, part)
            item.done = True


@dataclass
class _Pending:
    """A batch of Cascade.stream waiting for its deferred samples."""
    side: torch.Tensor
    conf: torch.Tensor
    exited: torch.Tensor
    deferred: torch.Tensor
    n: int
    done: bool = False
    logits: torch.Tensor | None = None

    @torch.inference_mode()
    def output(self) -> CascadeOutput:
        logits = self.side if self.n == 0 else self.logits
        return CascadeOutput(pred=logits.argmax(dim=1), exited=self.exited, side_conf=self.conf, logits=logits,
                             side_logits=self.side, n_deferred=self.n)


def concat_states(states: list):
    """Concatenate states along the batch. Dict states (text: {"hidden" (B, L, H), "mask" (B, L)})
    of different padded lengths L are right-padded with zeros to the longest: zero hidden rows at
    mask 0, which attention ignores (the [CLS] answer does not change beyond float rounding)."""
    if len(states) == 1:
        return states[0]
    if not isinstance(states[0], dict):
        return torch.cat(states)
    out = {}
    for key in states[0]:
        parts = [s[key] for s in states]
        if parts[0].dim() >= 2:
            longest = max(p.shape[1] for p in parts)
            parts = [p if p.shape[1] == longest else
                     torch.nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, longest - p.shape[1])) for p in parts]
        out[key] = torch.cat(parts)
    return out


def load_cascade(store, run_id: str, theta: float = 0.9, attach: str | None = None, device: str = "cpu",
                 amp: str | None = None, cuda_graphs: bool | None = None, exit_rule: str = "max-prob"):
    """(Cascade, DatasetSplits, collate, run) for a complete run with a checkpoint.

    amp None: the run's own setting (so on CUDA the cascade computes like the run's evaluation did).
    """
    from engine.runtime.checkpoint import model_for_run

    run = store.get_run(run_id)
    if run["status"] != "complete":
        raise UserError(f"run {run_id} is {run['status']}, not complete")
    if not run["attach"]:
        raise UserError(f"run {run_id} has no SideNet (mainnet-only): there is no early exit")
    model, data, collate = model_for_run(run, store, device)
    amp = amp or (run.get("config") or {}).get("amp", "auto")
    return Cascade(model, attach, theta, amp=amp, cuda_graphs=cuda_graphs, exit_rule=exit_rule), data, collate, run


def auto_theta_for_run(store, run_id: str, attach: str | None = None, max_drop: float = 0.005,
                       exit_rule: str = "max-prob") -> dict:
    """auto_theta on the run's cached validation logits."""
    from engine.analysis.runs import prepare_one

    return auto_theta(prepare_one(store, run_id, attach, split="val").curve_for(rule=exit_rule), max_drop)
