"""framestyle jobs list | status ID | logs ID [--follow] | stop ID: the cluster's jobs."""

from __future__ import annotations

import argparse
import sys
import time

from . import cluster_jobs

HELP = "list, inspect, follow and stop jobs on a Ray cluster"
EPILOG = """\
examples:
  framestyle jobs list --address http://head:8265
  framestyle jobs status framestyle-3f2a9c0d1e4b --json
  framestyle jobs logs framestyle-3f2a9c0d1e4b --follow
  framestyle jobs stop framestyle-3f2a9c0d1e4b

exit codes: 0 done (status: the job succeeded or runs), 2 no such job or unreachable cluster,
1 (status) the job failed, 130 (status) it was stopped
"""
STOP_WAIT_SECONDS = 60


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "status", "logs", "stop"])
    parser.add_argument("id", nargs="?", metavar="ID", help="submission id (not for list)")
    parser.add_argument("--follow", action="store_true",
                        help="logs: keep printing until the job ends")
    parser.add_argument("--all", action="store_true", help="list: also jobs not run by framestyle")
    parser.add_argument("--address", default=None, help=cluster_jobs.ADDRESS_HELP)
    parser.add_argument("--insecure", action="store_true", help=cluster_jobs.INSECURE_HELP)


def run(args: argparse.Namespace) -> dict:
    from ..core.errors import InputError

    if args.action != "list" and not args.id:
        raise InputError(f"jobs {args.action} needs a submission ID (see framestyle jobs list)")
    client = cluster_jobs.client(args.address, args.insecure)
    if args.action == "list":
        jobs = [cluster_jobs.describe(j) for j in cluster_jobs.call(client.list_jobs)
                if args.all or (j.entrypoint or "").startswith("framestyle")]
        return {"action": "list", "jobs": sorted(jobs, key=lambda j: j["start_time"] or 0)}
    job = cluster_jobs.info(client, args.id)
    if args.action == "logs":
        if args.follow:
            job = cluster_jobs.follow(client, args.id, out=sys.stdout)
            logs = None
        else:
            logs = cluster_jobs.call(client.get_job_logs, args.id)
            if not args.json:
                sys.stdout.write(logs)
        return {"action": "logs", "job": cluster_jobs.describe(job), "logs": logs}
    if args.action == "stop":
        cluster_jobs.call(client.stop_job, args.id)
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while (str(job.status.value) not in cluster_jobs.TERMINAL
               and time.monotonic() < deadline):
            time.sleep(0.5)
            job = cluster_jobs.info(client, args.id)
    return {"action": args.action, "job": cluster_jobs.describe(job)}


def exit_code(result: dict) -> int:
    if result["action"] != "status":
        return 0
    status = result["job"]["status"]
    return 0 if status not in ("FAILED", "STOPPED") else (1 if status == "FAILED" else 130)


def summary_line(result: dict) -> str:
    if result["action"] == "list":
        rows = [f"{j['submission_id']:<32} {j['status']:<10} "
                f"{time.strftime('%Y-%m-%d %H:%M', time.localtime((j['start_time'] or 0) / 1000))}"
                f"  {j['metadata'].get('spec', j['entrypoint'])}" for j in result["jobs"]]
        return "\n".join(rows) or "no framestyle jobs on this cluster"
    job = result["job"]
    line = f"{job['submission_id']}: {job['status']}"
    if job["message"] and result["action"] != "logs":
        line += f" ({job['message']})"
    return line
