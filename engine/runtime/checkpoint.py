"""Checkpoints: where a run's weights go, how a model is initialised, and how a run is rebuilt.

A checkpoint is `checkpoints/<run_id>.safetensors` next to the DB, stored in the run RELATIVE to
the DB's folder (a moved data folder keeps working; older absolute paths still read). The folder's
writability is checked before training; the store removes the checkpoint of a run that failed
(a kill after the save, a refused finish) or was deleted. It holds
what training changed: the whole model, or only the heads when the backbone was frozen, with
metadata naming the backbone ("pretrained", or "run:<id>" for frozen mode's --init-from run).
"""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from engine import paths
from engine.config import TrainConfig
from engine.errors import UserError
from engine.model import SideNetModel
from engine.runtime.device import device_label, pick_device


def folder(store) -> Path:
    return paths.checkpoints_dir(store.path)


def check_writable(store) -> None:
    """Fail now, not after the training, if the checkpoint folder cannot be written."""
    target = folder(store)
    probe = target / f".write-test-{os.getpid()}"
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise UserError(f"cannot write checkpoints to {target} ({err.strerror or err}); fix its permissions or "
                        "use another --db") from err


def path_of(store, stored: str | None) -> Path | None:
    """The checkpoint file of a run's stored path (relative to the DB's folder, or absolute)."""
    if not stored:
        return None
    p = Path(stored)
    return p if p.is_absolute() else store.path.parent / p


def init_mismatch(cfg: TrainConfig, source: dict) -> str | None:
    """Why a run cannot initialise this config, or None: the same model, stem and pooling always
    (the weights would load into another network); in frozen mode, where the MainNet is kept as it
    is, the same dataset and max length too, and not a frozen run (its MainNet is its own base's:
    start from that one, so that no checkpoint has to outlive a chain of deleted runs)."""
    trained = {**(source.get("config") or {}), "model": source.get("model"), "dataset": source.get("dataset")}
    if cfg.mode == "frozen" and source.get("mode") == "frozen":
        return (f"run {source['run_id']} is a frozen run itself: initialise from its MainNet's run, "
                f"{trained.get('init_from')}")
    fields = ("model", "stem", "pooling") + (("dataset", "max_length") if cfg.mode == "frozen" else ())
    bad = [f"{f} {trained[f]!r} (this run: {getattr(cfg, f)!r})" for f in fields
           if trained.get(f) is not None and trained[f] != getattr(cfg, f)]
    return f"run {source['run_id']} was trained with {', '.join(bad)}; initialise from a run that matches" if bad else None


def frozen_bases(model: str, dataset: str, runs: list[dict]) -> list[str]:
    """The runs (of `runs`, complete ones) a frozen run of this model and dataset can start from."""
    try:
        probe = TrainConfig(model=model, dataset=dataset, mode="frozen", init_from="-").resolved()
    except UserError:
        return []
    return [r["run_id"] for r in runs if r.get("checkpoint") and not init_mismatch(probe, r)]


def initialise(model: SideNetModel, cfg: TrainConfig, store) -> str:
    """Load --init-from weights and freeze what the mode freezes; returns the backbone's provenance."""
    backbone = "pretrained" if cfg.pretrained else "scratch"
    if cfg.init_from:
        source = store.get_run(cfg.init_from)
        if source["status"] != "complete":
            raise UserError(f"run {cfg.init_from} is {source['status']}; initialise from a complete run")
        if problem := init_mismatch(cfg, source):
            raise UserError(problem)
        load_weights(model, source, store, sidenets_optional=True)
        backbone = f"run:{cfg.init_from}"
    if cfg.mode in ("frozen", "head"):
        model.freeze(cfg.mode)
    return backbone


def load_weights(model: SideNetModel, run: dict, store, sidenets_optional: bool = False) -> None:
    """Put a run's trained weights into a model built from its config (its backbone first, for a
    frozen-backbone run). sidenets_optional: the model may have SideNets the run does not (init)."""
    ckpt = path_of(store, run.get("checkpoint"))
    if ckpt is None or not ckpt.exists():
        raise UserError(f"run {run['run_id']} has no checkpoint on disk ({run.get('checkpoint') or 'none recorded'})")
    from safetensors import safe_open

    with safe_open(str(ckpt), "pt") as f:
        backbone = (f.metadata() or {}).get("backbone", "full")
    if backbone.startswith("run:"):
        load_weights(model, _backbone_run(backbone[4:], store), store, sidenets_optional=True)
    state = load_file(str(ckpt))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise UserError(f"run {run['run_id']}'s checkpoint does not fit this model (unexpected {unexpected[:3]})")
    allowed = ("sidenets.",) if sidenets_optional else ()
    if backbone != "full":  # only the heads were saved: the backbone came from elsewhere
        allowed += ("mainnet.",)
    bad = [m for m in missing if not m.startswith(allowed)] if allowed else missing
    if bad:
        raise UserError(f"run {run['run_id']}'s checkpoint does not fit this model (missing {bad[:3]})")


def _backbone_run(run_id: str, store) -> dict:
    """The run a frozen run was initialised from; once deleted, its checkpoint, which delete keeps
    while a run reads it."""
    try:
        return store.get_run(run_id)
    except UserError:
        kept = paths.checkpoint_file(store.path, run_id)
        if kept is None or not kept.is_file():
            raise UserError(f"run {run_id}, the backbone this run was initialised from, was deleted and its "
                            "checkpoint is gone") from None
        return {"run_id": run_id, "checkpoint": str(kept)}


def save(model: SideNetModel, store, run_id: str, backbone: str) -> str:
    """Write the run's checkpoint; returns its path relative to the DB's folder."""
    target = paths.checkpoint_file(store.path, run_id)
    if target is None:
        raise UserError(f"run id {run_id!r} cannot name a checkpoint file")
    state = {k: v.detach().cpu().contiguous() for k, v in model.trained_state().items()}
    save_file(state, str(target), metadata={"backbone": "full" if model.frozen is None else backbone})
    return str(target.relative_to(store.path.parent))


def model_for_run(run: dict, store, device: str = "cpu"):
    """(model in eval mode, DatasetSplits, collate) of a finished run, rebuilt from its stored
    config and checkpoint (for the cascade, latency and the demo). The weights come from the
    checkpoint (and the backbone it names), never from a download: only a head-mode run builds
    its model with the pretrained weights it was trained on."""
    from engine.train import build_model, load_data

    cfg = TrainConfig.from_dict(run["config"], where=f"run {run['run_id']}")
    changes = {"init_from": None, "pretrained": cfg.mode == "head"}
    if cfg.mode == "frozen":
        changes["mode"] = "joint"  # the same modules; the backbone comes from the run it names
    cfg = dataclasses.replace(cfg, **changes).resolved()
    data = load_data(cfg, run["seed"])
    model, collate = build_model(cfg, data)
    load_weights(model, run, store)
    return model.to(pick_device(device)).eval(), data, collate


def provenance(device: torch.device) -> dict:
    """What a run records of where it ran: the device, library versions, the git commit."""
    import duckdb
    import numpy as np
    import torchvision
    import transformers

    versions = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
                "transformers": transformers.__version__, "numpy": np.__version__, "duckdb": duckdb.__version__}
    return {"device": device_label(device), "versions": versions, "git_commit": paths.git_commit()}
