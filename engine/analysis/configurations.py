"""Runs grouped into configurations: the seeds of one (dataset, model, mode, attach point, SideNet
size and order, stem/pooling) are replicates, and every number is a mean and a sample std over them.

A run with SideNets at several attach points belongs to one configuration per attach point; a
mainnet-only run belongs to a configuration whose attach point is None.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


def natural(text) -> tuple:
    """Sort key: resnet18 < resnet34 < resnet152 (numbers compared as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", str(text or "")))


@dataclass(frozen=True)
class Configuration:
    """One trained configuration and the runs (seeds) that replicate it."""

    dataset: str
    model: str
    mode: str
    attach: str | None
    sidenet_hidden: int | None
    sidenet_order: str | None
    variant: str = ""  # what tells it apart from sibling configurations, e.g. "epochs 30, lr 0.2"
    recipe: str = ""  # the runs' settings but the replicate fields, as sorted JSON (identity, not shown)
    run_ids: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple:
        return (self.dataset, self.model, self.mode, self.attach, self.sidenet_hidden, self.sidenet_order, self.recipe)

    @property
    def has_sidenet(self) -> bool:
        return self.attach is not None

    @property
    def label(self) -> str:
        """Short and unique among a dataset's configurations, e.g. 'resnet18 + SideNet@layer1 (h32)'."""
        variant = f", {self.variant}" if self.variant else ""
        if not self.has_sidenet:
            return f"{self.model} (MainNet only{variant})"
        extra = "" if self.mode == "joint" else f", {self.mode}"
        order = "" if self.sidenet_order in (None, "linear-bn-relu") else f", {self.sidenet_order}"
        return f"{self.model} + SideNet@{self.attach} (h{self.sidenet_hidden}{order}{extra}{variant})"

    @property
    def id(self) -> str:
        """A stable text id (used for widget keys)."""
        import hashlib

        parts = [*self.key[:-1], hashlib.sha1(self.recipe.encode()).hexdigest()[:8]]
        return "|".join("" if v is None else str(v) for v in parts)


# config fields that never tell configurations apart: replicates differ in these
_REPLICATE_FIELDS = {"seeds", "device", "num_workers", "preset", "init_from", "model", "dataset", "mode", "attach",
                     "sidenet_hidden", "sidenet_order"}


def _recipe(run: dict) -> dict:
    cfg = run.get("config") or {}
    return {k: v for k, v in cfg.items() if k not in _REPLICATE_FIELDS}


def _describe(recipe: dict, differing: list[str]) -> str:
    """The settings that tell one recipe from its siblings, in words: 'epochs 30, batch_size 512'."""
    return ", ".join(f"{k} {recipe.get(k)}" for k in differing)


def group_runs(runs: list[dict]) -> list[Configuration]:
    """Complete runs -> configurations, sorted by dataset, model (natural order), attach point.

    Runs are replicates when everything but their seed (and device, preset, init_from) is equal:
    two runs of one model with different epochs or learning rates are two configurations, whose
    labels name what differs. Runs that are not complete are ignored.
    """
    keyed: dict[tuple, dict[str, list[dict]]] = {}
    recipes: dict[str, dict] = {}
    for run in runs:
        if run.get("status", "complete") != "complete":
            continue
        recipe = _recipe(run)
        rkey = json.dumps(recipe, sort_keys=True, default=str)
        recipes[rkey] = recipe
        if run.get("mode") == "mainnet-only" or not run.get("attach"):
            bases = [(run["dataset"], run["model"], run.get("mode") or "mainnet-only", None, None, None)]
        else:
            bases = [(run["dataset"], run["model"], run["mode"], a, run.get("sidenet_hidden"), run.get("sidenet_order"))
                     for a in run["attach"]]
        for base in bases:
            keyed.setdefault(base, {}).setdefault(rkey, []).append(run)
    out = []
    for base, by_recipe in keyed.items():
        differing = sorted({k for r1 in by_recipe for r2 in by_recipe for k in set(recipes[r1]) | set(recipes[r2])
                            if recipes[r1].get(k) != recipes[r2].get(k)})
        for rkey, members in by_recipe.items():
            members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed"), r["run_id"]))
            out.append(Configuration(*base, variant=_describe(recipes[rkey], differing), recipe=rkey,
                                     run_ids=tuple(r["run_id"] for r in members)))
    return sorted(out, key=lambda c: (c.dataset, natural(c.model), c.has_sidenet, c.mode, natural(c.attach),
                                      c.sidenet_hidden or 0, c.sidenet_order or "", c.variant))


def datasets(configs: list[Configuration]) -> list[str]:
    return sorted({c.dataset for c in configs})


def options(configs: list[Configuration], field_name: str) -> list:
    """The distinct values of a field among configurations, naturally sorted (None left out)."""
    return sorted({getattr(c, field_name) for c in configs} - {None}, key=natural)


def select(configs: list[Configuration], dataset: str | None = None, models=None, attach=None,
           hidden=None, sidenet: bool | None = None) -> list[Configuration]:
    """Filter configurations; ``None`` keeps everything for that field, a collection keeps its members."""
    def keep(value, wanted):
        return wanted is None or value in wanted
    return [c for c in configs
            if (dataset is None or c.dataset == dataset) and keep(c.model, models)
            and (sidenet is None or c.has_sidenet == sidenet)
            and (not c.has_sidenet or (keep(c.attach, attach) and keep(c.sidenet_hidden, hidden)))]
