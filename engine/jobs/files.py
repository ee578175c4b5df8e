"""The jobs folder's files, treated as untrusted: bounded reads, writes that never follow a
symbolic link, and a check that every path written or deleted lies inside the jobs folder."""
from __future__ import annotations

import json
import os
import re
import stat
import uuid
from pathlib import Path

from engine.errors import UserError

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # no "..", no "/", no leading dot
MAX_JSON_BYTES = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def valid_job_id(job_id) -> bool:
    return isinstance(job_id, str) and JOB_ID.fullmatch(job_id) is not None


def inside(root: Path, path: Path) -> Path:
    """`path` itself (not what a link in it points to) if it lies strictly inside `root`; UserError otherwise."""
    base = root.resolve()
    target = path.parent.resolve() / path.name
    if target == base or base not in target.parents:
        raise UserError(f"refusing to touch {path}: it is not inside the jobs folder {root}")
    return target


def open_write(path: Path, append: bool = False) -> int:
    """A file descriptor for writing that refuses a symbolic link at `path`."""
    flags = os.O_WRONLY | os.O_CREAT | _NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
    try:
        return os.open(path, flags, 0o644)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None


def write_text(path: Path, text: str) -> None:
    fd = open_write(path)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_json(path: Path, data) -> None:
    """Atomic: a fresh temporary file beside it (never a link), then os.replace (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1, default=str))
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None


def read_bytes(path: Path, limit: int = MAX_JSON_BYTES) -> bytes | None:
    """The file's bytes (None if absent); UserError for a link, a folder, a FIFO, an unreadable or too large file."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as err:
        why = "is a symbolic link" if path.is_symlink() else f"cannot be read ({err.strerror or err})"
        raise UserError(f"{path.name} {why}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path.name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise UserError(f"{path.name} is larger than {limit} bytes")
    return data


def load_json(path: Path):
    """(value, problem): the parsed JSON of a file, or None and why it cannot be used."""
    try:
        data = read_bytes(path)
    except UserError as err:
        return None, str(err)
    except OSError as err:  # e.g. a folder where a file should be
        return None, f"{path.name} cannot be read ({err.strerror or err})"
    if data is None:
        return None, f"no {path.name}"
    try:
        return json.loads(data.decode("utf-8")), None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        return None, f"{path.name} is not valid JSON ({str(err).splitlines()[0][:160]})"


def read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is absent or not a valid object."""
    value, problem = load_json(path)
    return value if problem is None and isinstance(value, dict) else None
