"""The background training queue: the folders and states (queue.py), the worker and the job
process (worker.py), progress in words (progress.py), the shell alias (__main__.py)."""
from engine.jobs.queue import ACTIVE, STATES, JobQueue

__all__ = ["ACTIVE", "STATES", "JobQueue"]
