"""Serve the explorer: `python -m explorer.serve [--port 8501] [--address 127.0.0.1] [streamlit options]`.

The same as `streamlit run explorer/app.py --server.headless true --browser.gatherUsageStats false`
(localhost only unless --address says otherwise).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

APP = Path(__file__).resolve().parent / "app.py"
MAX_UPLOAD_MB = 20  # the live demo's own cap (engine.runtime.demo.MAX_UPLOAD_BYTES)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m explorer.serve", description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=8501), p.add_argument("--address", default="127.0.0.1")
    args, extra = p.parse_known_args(argv)
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), "--server.address", args.address, "--server.port", str(args.port),
                "--server.headless", "true", "--server.maxUploadSize", str(MAX_UPLOAD_MB),
                "--browser.gatherUsageStats", "false", *extra]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
