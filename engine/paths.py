"""Where things live on disk, and the one place that reads the SIDENETS_* environment variables.

    SIDENETS_DATA      datasets, models, caches (default: <repo>/data)
    SIDENETS_DB        the DuckDB file (default: <data>/sidenets.duckdb); --db overrides it
    SIDENETS_JOBS      the background job queue's folder (default: jobs/ next to the DB)
    SIDENETS_FEATURES  the feature cache (default: <data>/features)

Every path is returned absolute (a relative one is taken against the current directory once,
here), so a child process started elsewhere (the job worker) sees the same files.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from engine.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.strip() or "\x00" in value:
        raise UserError(f"${name} is set but empty or invalid; unset it or give a path")
    return Path(value).expanduser().absolute()


def data_dir() -> Path:
    """$SIDENETS_DATA, else <repo>/data."""
    return _env_path("SIDENETS_DATA", REPO / "data")


def db_path(path: str | os.PathLike | None = None) -> Path:
    """--db, else $SIDENETS_DB, else <data>/sidenets.duckdb; absolute. A folder is refused."""
    chosen = Path(path).expanduser().absolute() if path else _env_path("SIDENETS_DB", data_dir() / "sidenets.duckdb")
    if chosen.is_dir():
        raise UserError(f"the database path {chosen} is a folder; give a .duckdb file")
    return chosen


def jobs_dir(db: str | os.PathLike | None = None) -> Path:
    """$SIDENETS_JOBS, else jobs/ next to the DB."""
    return _env_path("SIDENETS_JOBS", db_path(db).parent / "jobs")


def checkpoints_dir(db: str | os.PathLike | None = None) -> Path:
    """checkpoints/ next to the DB (runs store their checkpoint relative to the DB's folder)."""
    return db_path(db).parent / "checkpoints"


def checkpoint_file(db: str | os.PathLike | None, run_id: str) -> Path | None:
    """checkpoints/<run_id>.safetensors next to the DB; None for a run id that is not a plain file name."""
    if not isinstance(run_id, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", run_id):
        return None
    return checkpoints_dir(db) / f"{run_id}.safetensors"


def features_dir() -> Path:
    """$SIDENETS_FEATURES, else <data>/features."""
    return _env_path("SIDENETS_FEATURES", data_dir() / "features")


def git_commit() -> str | None:
    """The repository's HEAD commit, or None outside a git checkout."""
    import subprocess

    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None
