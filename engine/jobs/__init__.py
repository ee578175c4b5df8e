"""The background training queue: the folders and states (queue.py), their untrusted files
(files.py), the worker and the job process (worker.py), progress in words (progress.py), the
shell alias (__main__.py)."""
from engine.jobs.queue import ACTIVE, BROKEN, FINISHED, STATES, TRANSITIONS, JobQueue

__all__ = ["ACTIVE", "BROKEN", "FINISHED", "STATES", "TRANSITIONS", "JobQueue"]
