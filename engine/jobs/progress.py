"""Job progress and seeds, in the words the UI and the CLI show (no I/O)."""
from __future__ import annotations

import math

from engine.errors import UserError

MAX_SEEDS = 50
# progress.json fields and their types (anything else a job folder holds is ignored)
_INT_FIELDS = ("n_seeds", "seed_index", "epoch", "epochs", "step", "steps", "seed")
_FLOAT_FIELDS = ("loss", "eta_s")
_STR_FIELDS = ("phase", "run_id", "split", "updated_at")


def progress_problem(progress) -> str | None:
    """Why a progress dict read from disk cannot be shown (wrong shape or types), or None."""
    if not isinstance(progress, dict):
        return f"progress.json holds {type(progress).__name__}, not an object"
    for name in _INT_FIELDS:
        v = progress.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            return f"progress.json: {name} must be a whole number >= 0, got {v!r}"[:200]
    for name in _FLOAT_FIELDS:
        v = progress.get(name)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            return f"progress.json: {name} must be a number, got {v!r}"[:200]
    for name in _STR_FIELDS:
        v = progress.get(name)
        if v is not None and not isinstance(v, str):
            return f"progress.json: {name} must be a string, got {v!r}"[:200]
    return None


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
        within = ((int(progress.get("epoch") or 1) - 1) + int(progress.get("step") or 0) / int(steps)) / int(epochs)
    fraction = (seed_i + within) / n_seeds
    return max(0.0, min(1.0, fraction)) if math.isfinite(fraction) else 0.0


def parse_seeds(text: str) -> list[int]:
    """'0 1 2' or '0, 1, 2' or '0-4' -> [0, 1, 2(, 3, 4)]; UserError on anything else."""
    seeds: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part.strip("-"):
                lo, hi = part.split("-", 1)
                if int(hi) - int(lo) >= MAX_SEEDS:
                    raise UserError(f"at most {MAX_SEEDS} seeds per job")
                seeds += list(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"seeds must be integers like '0 1 2' or '0-4', got {part!r}") from None
    if not seeds:
        raise UserError("give at least one seed, e.g. 0 or '0 1 2'")
    if len(seeds) > MAX_SEEDS:
        raise UserError(f"at most {MAX_SEEDS} seeds per job")
    if any(not 0 <= s < 2**31 for s in seeds):
        raise UserError(f"seeds must be in [0, 2^31), got {min(seeds) if min(seeds) < 0 else max(seeds)}")
    return list(dict.fromkeys(seeds))


def progress_text(progress: dict | None) -> str:
    """One line for a progress bar: 'seed 2/3 (seed 1) - epoch 1/2 - step 25/47 - loss 0.53 - about 40 s left'."""
    if not progress:
        return "waiting to start"
    parts = []
    if (progress.get("n_seeds") or 1) > 1 and progress.get("seed") is not None:
        parts.append(f"run {min((progress.get('seed_index') or 0) + 1, progress['n_seeds'])}/{progress['n_seeds']} "
                     f"(seed {progress['seed']})")
    phase = progress.get("phase")
    if phase == "loading":
        parts.append("loading data and model")
    elif phase == "finished":
        parts.append("finished")
    elif phase == "caching":
        parts.append(f"caching features ({progress.get('split') or '?'})")
    elif progress.get("epochs"):
        parts.append(f"epoch {progress.get('epoch')}/{progress['epochs']}")
        if progress.get("steps"):
            parts.append(f"step {progress.get('step')}/{progress['steps']}")
        if progress.get("loss") is not None:
            parts.append(f"loss {progress['loss']:.4f}")
        if progress.get("eta_s") is not None:
            parts.append(f"about {progress['eta_s']:.0f} s left in this epoch")
    return " · ".join(parts) or "starting"
