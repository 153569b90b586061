"""framestyle run SPEC: run the jobs of a spec file, one after another, on local Ray (or the
cluster at --address)."""

from __future__ import annotations

import argparse
import os
import sys

from ..core.errors import InputError
from .spec import KINDS, load_spec, parse_spec

HELP = "run the jobs of a YAML spec file (video, images, train), one after another"
SPEC_ENV = "FRAMESTYLE_SPEC"  # how `framestyle submit` hands a spec to the cluster
EPILOG = """\
a spec file:
  kind: video                        # video | images | train
  inputs: [s3://bucket/clips/]       # one URI or a list: files, folders, prefixes, globs
  output: s3://bucket/styled/
  style: builtin:7
  options: {height: 360, temporal: 0.7}

A file holds one job like this, a list of them, or `jobs: [...]`. train jobs have recipe, inputs
(and inputs_b), name and output (the runs' storage) instead of style. options are the command's
flags spelled as fields (height, crf, temporal, max_side, format, steps, workers, and a recipe's
own options). Unknown fields are errors; every error names the field and its line. Relative
local paths are relative to the spec file. See docs/jobs.md.

Running a spec again skips what it finished: videos and images already written, training runs
at their last checkpoint.

exit codes: 0 all done, 2 bad spec or input (nothing run), 3 some videos or images failed,
4 a job is already running elsewhere, 1 other failure
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", nargs="?", metavar="SPEC",
                        help="spec file: local path or s3:// URI")
    parser.add_argument("--spec-env", metavar="VAR", default=None,
                        help=f"read the spec from environment variable VAR instead (how "
                        f"`framestyle submit` hands it to the cluster, as ${SPEC_ENV})")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray "
                        "instance)")


def read_spec(args: argparse.Namespace):
    if args.spec_env:
        text = os.environ.get(args.spec_env)
        if text is None:
            raise InputError(f"${args.spec_env} is not set")
        return parse_spec(text, f"${args.spec_env}")
    if not args.spec:
        raise InputError("give a SPEC file (see framestyle run --help)")
    return load_spec(args.spec)


def run(args: argparse.Namespace) -> dict:
    spec = read_spec(args)
    results = []
    for i, job in enumerate(spec.jobs):
        print(f"framestyle: job {i + 1} of {len(spec.jobs)}: {job.kind}", file=sys.stderr)
        summary = job.run(args.address, progress=True)
        module = KINDS[job.kind]
        results.append({"kind": job.kind, "exit_code": _exit_code(module, summary),
                        "summary": summary})
        print(f"framestyle: {module.summary_line(summary)}", file=sys.stderr)
    return {"spec": spec.source, "submission_id": spec.submission_id, "jobs": results}


def _exit_code(module, summary: dict) -> int:
    return module.exit_code(summary) if hasattr(module, "exit_code") else 0


def exit_code(result: dict) -> int:
    return max((job["exit_code"] for job in result["jobs"]), default=0)


def summary_line(result: dict) -> str:
    codes = [job["exit_code"] for job in result["jobs"]]
    failed = sum(1 for c in codes if c)
    return (f"{result['spec']}: {len(codes)} job(s) run, "
            + (f"{failed} with failures" if failed else "all done"))
