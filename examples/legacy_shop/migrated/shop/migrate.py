"""The migration, from the command line: ``python -m shop.migrate COMMAND``.

* ``shadow``: what the status-column adapter would do with ``jobs`` now
  (changes nothing: run it next to the legacy worker);
* ``takeover``: poll ``jobs`` and enqueue one workflow per due pending row,
  until SIGTERM or Ctrl-C; ``durable worker --app shop.durable_app:app``
  processes run them (run one poller or several: a row is never started twice);
* ``sweeper-shadow [--stuck-after SECONDS]``: what the cron sweep would do now
  (changes nothing);
* ``sweep``: one sweep now (requeues rows a dead legacy worker left in running).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from datetime import timedelta

from .durable_app import app, jobs, sweeper


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m shop.migrate")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("shadow", help="the status-column adapter's shadow report")
    takeover = commands.add_parser("takeover", help="enqueue pending jobs rows until stopped")
    takeover.add_argument("--poll-interval", type=float, default=1.0)
    sweep_shadow = commands.add_parser("sweeper-shadow", help="the cron sweeper's shadow report")
    sweep_shadow.add_argument("--stuck-after", type=float, default=None, help="seconds")
    commands.add_parser("sweep", help="run one sweep now")
    args = parser.parse_args()

    if args.command == "shadow":
        print(jobs.shadow(stuck_after=sweeper.stuck_after or 0))
    elif args.command == "takeover":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with jobs.takeover(poll_interval=args.poll_interval, worker=False) as running:
            print(f"polling {jobs.legacy.qualified_name}; durable workers run the rows", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                stop.wait()
        print(f"stopped: {running.stats.started} workflow(s) started", flush=True)
    elif args.command == "sweeper-shadow":
        if args.stuck_after is not None:
            sweeper.stuck_after = timedelta(seconds=args.stuck_after).total_seconds()
        print(sweeper.shadow())
    else:
        print(sweeper.sweep())
    app.close()


if __name__ == "__main__":
    main()
