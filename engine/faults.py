"""Named fault points for the fault-injection tests: `point("train:after-checkpoint")` kills this
process with SIGKILL when $SIDENETS_FAULT names that point (comma-separated names allowed), so a
test can stop a real training or queue process at an exact phase instead of by wall-clock luck.
A no-op (one dict lookup) otherwise.
"""
from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    wanted = os.environ.get("SIDENETS_FAULT")
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
