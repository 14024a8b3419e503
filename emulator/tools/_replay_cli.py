"""``python -m emulator replay HISTORY.json...``: check saved histories against the app's current code.

Exit status 0 when every history replays with the decisions it recorded, 1 when one does not
(the diff says where), 2 when a history or the app cannot be read. No storage is touched.
``replay --task-hub NAME`` checks every running instance of a task hub instead
(:mod:`emulator.tools._hub_replay_cli`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from emulator.app._settings import AppLoadError
from emulator.tools import _hub_replay_cli
from emulator.tools._history_files import read_history_file
from emulator.tools._offline_replay import load_app_for_replay, replay_saved
from emulator.tools._recorded_episodes import HistoryFileError


def add_parser(commands: Any) -> None:
    """Register ``replay`` on the top-level subparsers."""
    text = "replay saved orchestration histories against the app's current code, offline"
    parser = commands.add_parser(
        "replay",
        help=text,
        description=text.capitalize() + ". Accepts `durable get-history --json` output, the status API's "
        "historyEvents, or rows exported from a History table. With --task-hub, replays every instance "
        "of a task hub that is not finished instead (read only: safe on production storage).",
    )
    parser.add_argument("histories", nargs="*", type=Path, metavar="HISTORY.json", help="saved histories")
    parser.add_argument("--script-root", type=Path, default=Path.cwd(), help="the app folder (default: .)")
    parser.add_argument(
        "--instance-id", default=None, help="the instance to replay when a table export holds several"
    )
    _hub_replay_cli.add_arguments(parser)
    parser.set_defaults(run_replay=run)


def run(args: argparse.Namespace) -> int:
    # The report goes to stdout; the app's own log lines at import would only be noise.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s", force=True)
    if bool(args.histories) == bool(args.task_hub):
        print(
            "error: name saved histories (HISTORY.json...) or a task hub (--task-hub NAME)", file=sys.stderr
        )
        return 2
    try:
        index = load_app_for_replay(Path(args.script_root).resolve())
    except AppLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.task_hub:
        return _hub_replay_cli.run(args, index)
    worst = 0
    for path in args.histories:
        try:
            saved = read_history_file(path, instance_id=args.instance_id)
        except HistoryFileError as exc:
            print(f"error: {path}: {exc}", file=sys.stderr)
            worst = 2
            continue
        report = replay_saved(saved, index, label=str(path))
        print(report.format())
        if not report.ok:
            worst = max(worst, 1)
    return worst
