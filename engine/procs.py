"""Process identity: a pid AND its start time, so a recycled pid never passes for a live process.

The start time is field 22 of /proc/<pid>/stat (clock ticks since boot): exact, and the same
whoever reads it. Without /proc (not Linux) only the pid is checked.
"""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{int(pid)}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None


def start_ticks(pid) -> int | None:
    """The process's start time in clock ticks since boot; None if it is gone, a zombie, or unknown."""
    fields = _stat(pid)
    if fields is None or fields[0] == "Z":
        return None
    with contextlib.suppress(ValueError, IndexError):
        return int(fields[19])  # field 22 of the whole line; the list starts at field 3
    return None


def identity(pid: int | None = None) -> dict:
    """{"pid", "start"} of a process (default: this one), as recorded in the job folders."""
    pid = os.getpid() if pid is None else int(pid)
    return {"pid": pid, "start": start_ticks(pid)}


def started_at(pid) -> float | None:
    """The process's start as a Unix time (1/100 s resolution), or None."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    try:
        btime = next(int(ln.split()[1]) for ln in Path("/proc/stat").read_text().splitlines()
                     if ln.startswith("btime "))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return btime + ticks / os.sysconf("SC_CLK_TCK")


def alive(pid, start=None) -> bool:
    """True if `pid` runs (not a zombie) and, when `start` is given, started at that tick."""
    try:
        pid = int(pid)
    except (TypeError, ValueError):
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    except OverflowError:
        return False
    if not Path("/proc/self/stat").exists():
        return True  # no /proc: the pid is all we know
    ticks = start_ticks(pid)
    if ticks is None:
        return False
    return start is None or (isinstance(start, int) and not isinstance(start, bool) and ticks == start)


def interrupt_on_sigterm() -> None:
    """SIGTERM (a cancel, `delete --cancel`) raises KeyboardInterrupt in this process, so a training
    run records itself as failed instead of vanishing."""
    signal.signal(signal.SIGTERM, _raise_interrupt)


def _raise_interrupt(signum, _frame):
    raise KeyboardInterrupt(f"stopped by signal {signum}")
