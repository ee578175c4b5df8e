"""`python -m engine.jobs worker|run|submit|list|cancel|clear`: the queue from a shell (an alias of
`python -m engine jobs ...`; the worker and job processes are started this way)."""
from __future__ import annotations

import argparse
import os
import re
import sys

from engine import procs
from engine.errors import UserError
from engine.jobs.queue import JobQueue
from engine.jobs.worker import IDLE_EXIT_S, Worker, run_job


def one_line(text, width: int = 100) -> str:
    """User text from a job folder on one terminal line (control characters shown as '?')."""
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", str(text or ""))[:width]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.jobs", description="The background training queue.")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="run queued jobs one at a time; exit when the queue stays empty")
    w.add_argument("--jobs-dir"), w.add_argument("--db")
    w.add_argument("--idle-exit-s", type=float, default=IDLE_EXIT_S)
    r = sub.add_parser("run", help="run one job (the worker calls this)")
    r.add_argument("job_dir"), r.add_argument("--db")
    s = sub.add_parser("submit", help="queue a preset (one job per configuration) and start a worker")
    s.add_argument("--preset", required=True), s.add_argument("--jobs-dir"), s.add_argument("--db")
    s.add_argument("--seeds", nargs="+", type=int)
    for name, text in (("list", "list jobs (broken ones with the reason)"),
                       ("clear", "remove finished and broken jobs")):
        c = sub.add_parser(name, help=text)
        c.add_argument("--jobs-dir"), c.add_argument("--db")
    c = sub.add_parser("cancel", help="cancel a job")
    c.add_argument("job_id"), c.add_argument("--jobs-dir"), c.add_argument("--db")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            return run_job(args.job_dir, args.db)
        queue = JobQueue(args.jobs_dir, args.db)
        if args.command == "worker":
            procs.interrupt_on_sigterm()
            n = Worker(queue).work(args.idle_exit_s)
            print(f"worker {os.getpid()}: ran {n} job(s); queue empty, leaving", flush=True)
        elif args.command == "submit":
            from engine.presets import preset

            for cfg in preset(args.preset):
                print(queue.submit(cfg.to_dict(), args.seeds or cfg.seeds,
                                   label=f"{args.preset}: {cfg.model} on {cfg.dataset}"))
            queue.ensure_worker()
        elif args.command == "list":
            for j in queue.jobs():
                print(f"{j['job_id']}  {j['state']:<9} {j['fraction']:>5.0%}  {one_line(j['label'])}  "
                      f"{one_line(j.get('error'), 200)}".rstrip())
            if queue.problem:
                print(f"warning: {one_line(queue.problem, 200)}", file=sys.stderr)
        elif args.command == "clear":
            print(f"removed {queue.clear_finished()} finished or broken job(s)")
        elif args.command == "cancel":
            print(queue.cancel(args.job_id))
        return 0
    except UserError as err:
        print(f"error: {one_line(err, 400)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
