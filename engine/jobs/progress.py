"""Job progress and seeds, in the words the UI and the CLI show (no I/O)."""
from __future__ import annotations

from engine.errors import UserError

MAX_SEEDS = 50


def progress_fraction(progress: dict | None) -> float:
    """Overall fraction done of a job from its progress dict (seeds x epochs x steps)."""
    if not progress:
        return 0.0
    if progress.get("phase") == "finished":
        return 1.0
    n_seeds = max(int(progress.get("n_seeds") or 1), 1)
    seed_i = int(progress.get("seed_index") or 0)
    epochs, steps = progress.get("epochs"), progress.get("steps")
    within = 0.0
    if epochs and steps:
        within = ((int(progress.get("epoch", 1)) - 1) + int(progress.get("step", 0)) / int(steps)) / int(epochs)
    return max(0.0, min(1.0, (seed_i + within) / n_seeds))


def parse_seeds(text: str) -> list[int]:
    """'0 1 2' or '0, 1, 2' or '0-4' -> [0, 1, 2(, 3, 4)]; UserError on anything else."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part.strip("-"):
                lo, hi = part.split("-", 1)
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"seeds must be integers like '0 1 2' or '0-4', got {part!r}") from None
    if not seeds:
        raise UserError("give at least one seed, e.g. 0 or '0 1 2'")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"at most {MAX_SEEDS} seeds per job")
    return list(dict.fromkeys(seeds))


def progress_text(progress: dict | None) -> str:
    """One line for a progress bar: 'seed 2/3 (seed 1) - epoch 1/2 - step 25/47 - loss 0.53 - about 40 s left'."""
    if not progress:
        return "waiting to start"
    parts = []
    if progress.get("n_seeds", 1) > 1 and progress.get("seed") is not None:
        parts.append(f"run {min(progress.get('seed_index', 0) + 1, progress['n_seeds'])}/{progress['n_seeds']} "
                     f"(seed {progress['seed']})")
    phase = progress.get("phase")
    if phase == "loading":
        parts.append("loading data and model")
    elif phase == "finished":
        parts.append("finished")
    elif progress.get("epochs"):
        parts.append(f"epoch {progress.get('epoch')}/{progress['epochs']}")
        if progress.get("steps"):
            parts.append(f"step {progress.get('step')}/{progress['steps']}")
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("eta_s") is not None:
            parts.append(f"about {progress['eta_s']:.0f} s left in this epoch")
    return " · ".join(parts) or "starting"
