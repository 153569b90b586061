"""The ``framestyle`` command: parse, run a job, print a summary or --json, set the exit code."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import sys
import threading

from ..core.errors import FieldError, as_user_error, first_line
from . import (demo, eval, image, images, jobs_command, models, run, serve, styles, submit, train,
               video)

# subcommand -> module with HELP, add_arguments(parser), run(args) -> dict, summary_line(dict),
# and optionally EPILOG, FLAGS (job field -> flag, where it is not --field-name),
# exit_code(result) -> int (default 0 once run returns), EXTRA_ARGS (flags it parses itself,
# handed over as args.extra) and ADD_HELP = False (it adds its own -h).
# These modules import neither torch nor Ray at the top, so --help answers at once.
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by SIGINT
INTERRUPTED = ("framestyle: interrupted; finished work (chunks, images, checkpoints) is kept, "
               "re-run to resume")
INTERRUPT_GRACE_SECONDS = 3

JOBS = {
    "video": video,
    "image": image,
    "images": images,
    "demo": demo,
    "eval": eval,
    "models": models,
    "styles": styles,
    "train": train,
    "run": run,
    "submit": submit,
    "jobs": jobs_command,
    "serve": serve,
}


class OneLineErrors(argparse.ArgumentParser):
    """Usage mistakes as one line on stderr and exit 2, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="framestyle",
        description="Distributed style transfer for videos and image archives on Ray.",
        epilog="exit codes: 0 success, 1 unexpected failure (a bug), 2 bad input or usage, "
        "3 some videos or images failed, 4 the same job is already running, 5 storage or cluster "
        "unavailable (re-run resumes), 6 no space left on a local disk (re-run resumes), "
        "130 interrupted (re-run resumes)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, job in JOBS.items():
        p = sub.add_parser(name, help=job.HELP, description=job.HELP,
                           epilog=getattr(job, "EPILOG", None),
                           add_help=getattr(job, "ADD_HELP", True),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        job.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        p.add_argument("--verbose", action="store_true",
                       help="also show Ray's and the libraries' own log messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    job = JOBS[args.command]
    if extra and not getattr(job, "EXTRA_ARGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    quiet_libraries(args.verbose)
    try:
        # With --json, stdout carries the summary alone: whatever else writes there while the
        # job runs (Ray's notes about dead workers, libraries' prints) goes to stderr.
        with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
            result = job.run(args)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - ours or a known fault, however wrapped; else a bug
        error = as_user_error(e)
        if error is None:
            raise
        message = error.for_flags(getattr(job, "FLAGS", {})) if isinstance(error, FieldError) \
            else first_line(error)
        print(f"framestyle: error: {message}", file=sys.stderr)
        return error.exit_code
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(job.summary_line(result))
    return job.exit_code(result) if hasattr(job, "exit_code") else 0


def quiet_libraries(verbose: bool) -> None:
    """Only our progress bar and summary on a normal run: Ray's start-up notes (token auth, the
    local instance), its workers' logs and other libraries' warnings show with --verbose."""
    from ..pipeline import cluster

    cluster.VERBOSE = verbose
    if not verbose:
        import logging
        import warnings

        warnings.filterwarnings("ignore")
        logging.getLogger("ray").setLevel(logging.ERROR)


def command() -> None:
    """The console script. Ctrl-C stops it within seconds whatever it is doing. The first
    SIGINT raises KeyboardInterrupt as usual, and ``main`` reports it. If that exception is
    swallowed (Ray's core worker catches what is raised in its callbacks), a timer ends the
    process anyway. A second SIGINT ends it at once. Either way it leaves with ``os._exit``,
    because the interpreter's own exit would wait for Ray's and Ray Data's background threads,
    which an interrupted job leaves busy. Finished work is on storage already: every write is
    atomic."""
    interrupted = threading.Event()

    def on_sigint(signum, frame):
        if interrupted.is_set():
            _leave_interrupted(announce=True)
        interrupted.set()
        timer = threading.Timer(INTERRUPT_GRACE_SECONDS, _leave_interrupted, (True,))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    code = main()
    if code == EXIT_INTERRUPTED or interrupted.is_set():
        _leave_interrupted(announce=code != EXIT_INTERRUPTED)
    # The interpreter's last garbage collection walks every object PyTorch's import made: 0.3-0.6
    # s here, a tenth of a small job. Frozen objects are left to the OS; atexit handlers (Ray's
    # shutdown), finalizers and flushes still run.
    gc.freeze()
    sys.exit(code)


def _leave_interrupted(announce: bool) -> None:
    if announce:
        print(INTERRUPTED, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    command()
