"""Runs grouped into configurations: the seeds of one (dataset, model, mode, attach point, SideNet
size and order, stem/pooling) are replicates, and every number is a mean and a sample std over them.

A run with SideNets at several attach points belongs to one configuration per attach point; a
mainnet-only run belongs to a configuration whose attach point is None.
"""
from __future__ import annotations

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
    variant: str = ""  # what else tells runs apart (stem, pooling, recipe), e.g. "stem torchvision"
    run_ids: tuple[str, ...] = field(default=(), compare=False)

    @property
    def key(self) -> tuple:
        return (self.dataset, self.model, self.mode, self.attach, self.sidenet_hidden, self.sidenet_order, self.variant)

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
        return "|".join("" if v is None else str(v) for v in self.key)


def variant(run: dict) -> str:
    """What else tells a run apart from the plain ones, in words ('' when nothing): a torchvision
    stem, a recipe other than the paper's Adam + plateau."""
    cfg = run.get("config") or {}
    parts = []
    if cfg.get("stem") not in (None, "paper"):
        parts.append(f"{cfg['stem']} stem")
    recipe = (cfg.get("optimizer", "adam"), cfg.get("schedule", "plateau"))
    if recipe != ("adam", "plateau"):
        parts.append(" + ".join(recipe))
    return ", ".join(parts)


def group_runs(runs: list[dict]) -> list[Configuration]:
    """Complete runs -> configurations, sorted by dataset, model (natural order), attach point.

    Runs that are not complete are ignored (the store lists only complete ones by default).
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        if run.get("status", "complete") != "complete":
            continue
        v = variant(run)
        if run.get("mode") == "mainnet-only" or not run.get("attach"):
            keys = [(run["dataset"], run["model"], run.get("mode") or "mainnet-only", None, None, None, v)]
        else:
            keys = [(run["dataset"], run["model"], run["mode"], a, run.get("sidenet_hidden"), run.get("sidenet_order"), v)
                    for a in run["attach"]]
        for key in keys:
            groups.setdefault(key, []).append(run)
    out = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed"), r["run_id"]))
        out.append(Configuration(*key, run_ids=tuple(r["run_id"] for r in members)))
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
