"""framestyle submit SPEC --address http://HEAD:8265 [--wait]: send a spec to a Ray cluster."""

from __future__ import annotations

import argparse
import re
import sys

from . import cluster_jobs
from .run import SPEC_ENV
from .spec import load_spec

HELP = "submit a spec file's jobs to a Ray cluster (Ray's job server) and optionally wait"
EPILOG = """\
examples:
  framestyle submit bulk.yaml --address http://head:8265 --wait
  framestyle submit bulk.yaml                         # again: attaches, or resumes what is left
  framestyle jobs logs framestyle-3f2a9c0d1e4b --follow

The spec is validated here first: a bad one is refused with the field and line, and nothing is
submitted. It runs on the cluster as `framestyle run` (framestyle must be installed there, as in
infra/docker), so its local paths are paths on the cluster's nodes; use s3:// URIs on
multi-node clusters. The submission id is derived from the spec: submitting the same spec again
attaches to its job while that runs, and otherwise submits the next attempt
(ID-2, ID-3, ...), which skips everything already finished.

Ray's token authentication stays on: the token comes from $RAY_AUTH_TOKEN or ~/.ray/auth_token.

exit codes: 0 submitted (with --wait: succeeded), 2 bad spec or unreachable cluster, 3 (with
--wait) some items failed, 1 the job failed, 130 it was stopped
"""


# --env names that hold credentials: refused, since a job's runtime env is stored in the cluster
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY",
                         re.IGNORECASE)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC", help="spec file: local path or s3:// URI")
    parser.add_argument("--address", default=None, help=cluster_jobs.ADDRESS_HELP)
    parser.add_argument("--insecure", action="store_true", help=cluster_jobs.INSECURE_HELP)
    parser.add_argument("--wait", action="store_true",
                        help="follow the job's log until it ends; exit with its status")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable for the job (repeatable), e.g. "
                        "AWS_ENDPOINT_URL for MinIO; credentials belong to the cluster's role")


def run(args: argparse.Namespace) -> dict:
    from ..core.errors import InputError

    spec = load_spec(args.spec)  # a bad spec stops here: nothing is submitted
    env = dict(item.split("=", 1) for item in args.env if "=" in item)
    if len(env) != len(args.env):
        raise InputError("--env takes KEY=VALUE")
    for key in env:
        if SECRET_NAME.search(key):
            raise InputError(f"--env {key}: credentials would be stored in the job's metadata, "
                             "readable by anyone who can list jobs; give the cluster an IAM "
                             "role or service account instead")
    client = cluster_jobs.client(args.address, args.insecure)
    base = spec.submission_id
    attempts = sorted((j for j in cluster_jobs.call(client.list_jobs)
                       if (j.submission_id or "") == base
                       or (j.submission_id or "").startswith(base + "-")),
                      key=lambda j: j.start_time or 0)
    running = [j for j in attempts if str(j.status.value) not in cluster_jobs.TERMINAL]
    if running:
        submission_id, attached = running[-1].submission_id, True
        print(f"framestyle: {args.spec} is already running as {submission_id}: attached",
              file=sys.stderr)
    else:
        submission_id = base if not attempts else f"{base}-{len(attempts) + 1}"
        attached = False
        cluster_jobs.call(
            client.submit_job, entrypoint=f"framestyle run --spec-env {SPEC_ENV}",
            submission_id=submission_id,
            runtime_env={"env_vars": {SPEC_ENV: spec.to_json(), **env}},
            metadata={"framestyle_spec": base, "spec": args.spec})
        if attempts:
            print(f"framestyle: resubmitted {args.spec} as {submission_id}; what earlier "
                  "attempts finished is skipped", file=sys.stderr)
    result = {"submission_id": submission_id, "attached": attached, "attempt": len(attempts) +
              (0 if attached else 1), "address": cluster_jobs.job_server(args.address),
              "status": None, "exit_code": None}
    if args.wait:
        job = cluster_jobs.follow(client, submission_id)
        result.update(status=str(job.status.value), exit_code=cluster_jobs.exit_code_of(job))
    return result


def exit_code(result: dict) -> int:
    return result["exit_code"] or 0


def summary_line(result: dict) -> str:
    verb = "attached to" if result["attached"] else "submitted"
    line = f"{verb} {result['submission_id']} at {result['address']}"
    if result["status"]:
        return f"{line}: {result['status']}"
    return line + f"; follow it with: framestyle jobs logs {result['submission_id']} --follow"
