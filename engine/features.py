"""The feature cache: a frozen backbone runs once per sample; heads then train in seconds.

What a head reads is stored per (model, backbone-weights digest, dataset, split, preprocessing,
tap) as one float16 array (N, F) under data/features/ ($SIDENETS_FEATURES):

    <root>/<model>/<entry id>/manifest.json     the key, shape, dtype, crc32, created
    <root>/<model>/<entry id>/features.npy      float16 (N, F)
    <root>/<model>/<entry id>/labels.npy        int64 (N,), checked against the split's labels

Taps: an attach point (e.g. "block3": side_features after block 3) or "head" (the final head's
input, pool(...) of the last block). Head mode and frozen mode train only heads, so their runs
read these arrays instead of running the backbone (engine.train). A miss builds the entry first
and then reads it back, so a seed gives the same logits whether the entry existed or not. No
input augmentation is applied to cached training (the features are of the unaugmented inputs).

Safety: an entry is built in a temporary folder and renamed into place (a full disk or a kill
leaves no half entry); two processes building the same entry take turns on a lock file; an entry
whose size, shape, labels or crc32 disagree with its manifest is rebuilt, never used.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine import paths
from engine.errors import UserError

VERSION = 1
EVAL_BATCH = 256


def weights_digest(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> str:
    """A digest of a module's parameters and buffers (names, shapes and bytes), CPU float32."""
    h = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(module.state_dict().items()):
        if name.startswith(skip):
            continue
        h.update(name.encode())
        t = tensor.detach().to("cpu")
        h.update(str(tuple(t.shape)).encode())
        h.update((t.float() if t.is_floating_point() else t).contiguous().numpy().tobytes())
    return h.hexdigest()


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


class FeatureCache:
    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root else paths.features_dir()

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def entry_id(key: dict) -> str:
        return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def folder(self, key: dict) -> Path:
        return self.root / key["model"] / self.entry_id(key)

    # -- reading ----------------------------------------------------------------------------
    def read(self, key: dict, labels: np.ndarray) -> torch.Tensor | None:
        """The entry's float16 (N, F) features, or None when absent; a damaged entry is removed."""
        folder = self.folder(key)
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            return None
        problem = self._check(folder, key, labels)
        if problem:
            tqdm.write(f"feature cache: entry {folder.name} ({key['tap']}, {key['split']}) is unusable ({problem}); "
                       "rebuilding it", file=sys.stderr)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        try:
            return torch.from_numpy(np.load(folder / "features.npy"))
        except (OSError, ValueError):  # removed or replaced meanwhile (`features rm`): built again under the lock
            return None

    @staticmethod
    def _check(folder: Path, key: dict, labels: np.ndarray) -> str | None:
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if manifest.get("key") != key or manifest.get("version") != VERSION:
                return "its manifest holds another key"
            feats = folder / "features.npy"
            if feats.stat().st_size != manifest["bytes"] or _crc32(feats) != manifest["crc32"]:
                return "its data do not match the manifest's size or checksum"
            arr = np.load(feats, mmap_mode="r")
            if list(arr.shape) != manifest["shape"] or arr.dtype != np.float16:
                return "its array has another shape"
            if not np.array_equal(np.load(folder / "labels.npy"), labels):
                return "its samples are not this split's"
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as err:
            return f"{err.__class__.__name__}: {err}"
        return None

    # -- building ---------------------------------------------------------------------------
    def get(self, keys: dict[str, dict], labels: np.ndarray, compute, source: dict | None = None) -> dict[str, torch.Tensor]:
        """{tap: float16 (N, F)} for the keys {tap: key}; the missing ones are built together by
        ``compute(taps) -> {tap: float32 array (N, F)}`` (one backbone pass), then read back.
        ``source``: the training settings that reproduce these keys (kept in the manifest, so the
        explorer can offer the entry as a backbone to design SideNets on)."""
        keys = {tap: json.loads(json.dumps(key, default=str)) for tap, key in keys.items()}  # as the manifest holds it
        out = {tap: self.read(key, labels) for tap, key in keys.items()}
        missing = [tap for tap, value in out.items() if value is None]
        if not missing:
            return out
        with contextlib.ExitStack() as held:
            for lock_id in sorted({self.split_id(keys[tap]) for tap in missing}):  # in order: no deadlock
                held.enter_context(self._locked(lock_id))
            for tap in missing:  # built by another process while this one waited?
                out[tap] = self.read(keys[tap], labels)
            missing = [tap for tap in missing if out[tap] is None]
            if missing:
                arrays = compute(missing)
                for tap in missing:
                    self._write(keys[tap], np.asarray(arrays[tap], dtype=np.float16), labels, source)
                    out[tap] = self.read(keys[tap], labels)
                    if out[tap] is None:
                        raise UserError(f"feature cache: the entry for {tap} could not be read back after writing")
        return out

    def split_id(self, key: dict) -> str:
        """What the entries of one backbone pass over one split share (every field but the tap):
        builders of any of them take this one lock, whichever taps each asks for."""
        return self.entry_id({k: v for k, v in key.items() if k != "tap"})

    @contextlib.contextmanager
    def _locked(self, lock_id: str):
        """An exclusive flock on .locks/<lock_id>.lock: another process building there waits."""
        lock_path = self.root / ".locks" / f"{lock_id}.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _write(self, key: dict, features: np.ndarray, labels: np.ndarray, source: dict | None = None) -> None:
        folder = self.folder(key)
        tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            np.save(tmp / "features.npy", features)
            np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
            feats = tmp / "features.npy"
            manifest = {"version": VERSION, "key": key, "shape": list(features.shape), "dtype": "float16",
                        "bytes": feats.stat().st_size, "crc32": _crc32(feats),
                        "created": datetime.now(UTC).isoformat(timespec="seconds"), "source": source or {}}
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except OSError as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(f"feature cache: could not write {folder} ({err.strerror or err}); nothing half-written "
                            "was kept. Free some disk space or set SIDENETS_FEATURES to another folder") from err

    # -- listing ----------------------------------------------------------------------------
    def entries(self) -> list[dict]:
        """Every complete entry: id, model, dataset, split, tap, shape, bytes, created, key, source."""
        out = []
        for manifest_path in sorted(self.root.glob("*/*/manifest.json")):
            with contextlib.suppress(OSError, ValueError, KeyError):
                m = json.loads(manifest_path.read_text())
                key = m["key"]
                size = sum(p.stat().st_size for p in manifest_path.parent.iterdir() if p.is_file())
                out.append({"id": manifest_path.parent.name, "model": key["model"], "dataset": key["dataset"],
                            "split": key["split"], "tap": key["tap"], "shape": m["shape"], "bytes": size,
                            "created": m.get("created"), "key": key, "source": m.get("source") or {}})
        return out

    def backbones(self) -> list[dict]:
        """Cached backbones to train heads on: entries grouped by everything but split and tap.
        Each: {"id", "label", "source" (TrainConfig fields that reproduce the keys), "taps" (cached in
        all three splits), "attach_names" (all of the model's), "size"}; newest first."""
        from engine import mainnets

        groups: dict[str, dict] = {}
        for e in self.entries():
            if not e["source"]:
                continue
            rest = {k: v for k, v in e["key"].items() if k not in ("split", "tap", "subset_seed")}
            gid = self.entry_id(rest)
            g = groups.setdefault(gid, {"id": gid, "source": e["source"], "splits": {}, "bytes": 0, "created": ""})
            g["splits"].setdefault(e["tap"], set()).add(e["split"])
            g["bytes"] += e["bytes"]
            g["created"] = max(g["created"], e["created"] or "")
        out = []
        for g in groups.values():
            src = g["source"]
            taps = sorted(t for t, splits in g["splits"].items() if {"train", "val", "test"} <= splits)
            if "head" not in taps:
                continue
            try:
                names = mainnets.attach_names(src["model"])
            except UserError:
                continue
            where = "pretrained weights" if src.get("mode") == "head" else f"the MainNet of run {src.get('init_from')}"
            out.append({"id": g["id"], "source": src, "taps": taps, "attach_names": names, "created": g["created"],
                        "size": f"{g['bytes'] / 2**20:.0f} MB",
                        "label": f"{src['model']} on {src['dataset']}, {where} (cached: "
                                 f"{', '.join(t for t in taps if t != 'head') or 'final head only'})"})
        return sorted(out, key=lambda b: b["created"], reverse=True)

    def remove(self, entry_id: str | None = None) -> int:
        """Remove one entry (by id) or all (None); returns how many. Unknown id -> UserError."""
        removed = 0
        for e in self.entries():
            if entry_id is None or e["id"] == entry_id:
                shutil.rmtree(self.root / e["model"] / e["id"], ignore_errors=True)
                removed += 1
        if entry_id is not None and not removed:
            raise UserError(f"no feature cache entry {entry_id!r} in {self.root} (see: python -m engine features list)")
        for stale in self.root.glob("*/.*.tmp-*"):  # folders of builds that were killed
            pid = stale.name.rsplit("-", 1)[-1]
            if not pid.isdigit() or not Path(f"/proc/{pid}").exists():
                shutil.rmtree(stale, ignore_errors=True)
        return removed


def compute_features(model, batches, taps: list[str], names: dict[str, int], device, amp: str, desc: str) -> dict:
    """Run the frozen backbone over a split once: {tap: float32 array (N, F)} for the taps asked
    ("head" or an attach name; names maps attach names to block indices)."""
    from engine.runtime.device import autocast

    ks = sorted({names[t] for t in taps if t != "head"})
    want_head = "head" in taps
    parts: dict[str, list] = {t: [] for t in taps}
    net = model.mainnet
    net.eval()
    start = time.perf_counter()
    with torch.inference_mode():
        for x, _ in tqdm(batches.iterate(EVAL_BATCH), desc=desc, total=-(-len(batches) // EVAL_BATCH),
                         leave=False, dynamic_ncols=True):
            with autocast(device, amp):
                if want_head:
                    feats = net.features(x, ks)
                else:
                    _, taps_k = net.forward_taps(x, ks, stop_after_last=True)
                    feats = {f"side{k}": net.side_features(taps_k[k]) for k in ks}
            for t in taps:
                parts[t].append(feats["head" if t == "head" else f"side{names[t]}"].float().cpu())
    tqdm.write(f"{desc}: {len(batches)} samples in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return {t: torch.cat(v).numpy() for t, v in parts.items()}
