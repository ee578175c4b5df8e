"""Named fault points for the fault-injection tests: `point("train:after-checkpoint")` kills this
process with SIGKILL when $SIDENETS_FAULT names that point (comma-separated names allowed), so a
test can stop a real training or queue process at an exact phase instead of by wall-clock luck.
A no-op (one dict lookup) otherwise. The points (tests/faults/ kills at each):

    train:after-start, train:first-step, train:after-fit, train:after-checkpoint, train:after-finish
    store:before-commit (inside finish_run's transaction), store:delete-after-term (delete --cancel),
    schema:migrated-uncommitted (inside a migration's transaction)
    queue:submit-half, queue:cancel-flagged, queue:clearing (after each folder Clear removes)
    worker:claimed, worker:started-job, worker:job-running, worker:job-exited (the worker)
    job:loaded, job:after-seed, job:before-done (the job's own process)
"""
from __future__ import annotations

import os
import signal


def point(name: str) -> None:
    wanted = os.environ.get("SIDENETS_FAULT")
    if wanted and name in wanted.split(","):
        os.kill(os.getpid(), signal.SIGKILL)
