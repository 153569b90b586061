"""The ``framestyle`` command: parse, run a job, print a summary or --json, set the exit code."""

from __future__ import annotations

import argparse
import json
import sys

from ..core.errors import FieldError, FramestyleError
from . import demo, eval, image, images, models, styles, video

# subcommand -> module with HELP, add_arguments(parser), run(args) -> dict, summary_line(dict),
# and optionally EPILOG, FLAGS (job field -> flag, where it is not --field-name) and
# exit_code(result) -> int (default 0 once run returns).
# These modules import neither torch nor Ray at the top, so --help answers at once.
JOBS = {
    "video": video,
    "image": image,
    "images": images,
    "demo": demo,
    "eval": eval,
    "models": models,
    "styles": styles,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framestyle",
        description="Distributed style transfer for videos and image archives on Ray.",
        epilog="exit codes: 0 success, 1 failure, 2 bad input or usage, 3 some images failed, "
        "4 the same job is already running",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, job in JOBS.items():
        p = sub.add_parser(name, help=job.HELP, description=job.HELP,
                           epilog=getattr(job, "EPILOG", None),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        job.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
        p.add_argument("--verbose", action="store_true",
                       help="also show Ray's and the libraries' own log messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    job = JOBS[args.command]
    quiet_libraries(args.verbose)
    try:
        result = job.run(args)
    except FieldError as e:
        print(f"framestyle: error: {e.for_flags(getattr(job, 'FLAGS', {}))}", file=sys.stderr)
        return e.exit_code
    except FramestyleError as e:
        print(f"framestyle: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("framestyle: interrupted; finished chunks are kept, re-run to resume",
              file=sys.stderr)
        return 130
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


if __name__ == "__main__":
    sys.exit(main())
