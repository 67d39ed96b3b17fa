"""The one exception type whose message is meant for a user, and the one edge where errors meet the user.

Anything a user can get wrong (a missing file, a clip that is not audio, a
checkpoint that does not fit) raises `VcAppError` with one clear sentence.
Every entry point (`vc-app`, `python -m vc_app.recipe`, `app.py`,
`python -m vc_app.examples.make_examples`) runs its work through
`run_entry_point`, which prints that sentence and exits non-zero; the web UI
shows it as a message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class VcAppError(Exception):
    """A problem the user can fix, described in one sentence."""


def run_entry_point(prog: str, action: Callable[[], int | None], *, debug: bool = False) -> int:
    """Run an entry point's work; what goes wrong becomes one line on stderr and an exit code, never a traceback.

    - `VcAppError`: "PROG: error: SENTENCE", exit 1;
    - Ctrl-C: "PROG: interrupted.", exit 130;
    - anything else: "PROG: internal error: TYPE: MESSAGE (re-run with --debug for details).", exit 1.

    Args:
        action: the work; returns the exit code (None: 0).
        debug: let errors propagate with their traceback (the entry points' `--debug`).
    """
    try:
        return int(action() or 0)
    except VcAppError as err:
        if debug:
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the last line of defence against tracebacks
        if debug:
            raise
        print(f"{prog}: internal error: {type(err).__name__}: {err} (re-run with --debug for details).",
              file=sys.stderr)
        return 1


def add_debug_option(parser) -> None:
    """--debug: show full tracebacks instead of one line (see `run_entry_point`)."""
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
