"""Talking to a Ray cluster's job server (``JobSubmissionClient``): what ``framestyle submit``
and ``framestyle jobs`` share.

Token authentication stays on: the client sends the token (``RAY_AUTH_TOKEN``, else
``~/.ray/auth_token``) only when ``RAY_AUTH_MODE=token`` is set before Ray is imported, so it is
set here unless the caller chose otherwise.
"""

from __future__ import annotations

import os
import sys
import time
from urllib.parse import urlsplit

from ..core.errors import FramestyleError, InputError, first_line

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
AGENT_WAIT_SECONDS = 30
ADDRESS_HELP = ("the cluster's job server, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
                f"else an http:// $RAY_ADDRESS, else {DEFAULT_ADDRESS})")


def job_server(address: str | None) -> str:
    if address:
        return address
    ray_address = os.environ.get("RAY_ADDRESS", "")
    return (os.environ.get("RAY_API_SERVER_ADDRESS")
            or (ray_address if ray_address.startswith(("http://", "https://")) else None)
            or DEFAULT_ADDRESS)


def client(address: str | None, insecure: bool = False):
    """A JobSubmissionClient for the cluster, or a one-line error when it cannot be reached.
    The cluster's token travels with every request: over plain http only to this machine,
    unless ``insecure`` says the network is trusted."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    from ray.job_submission import JobSubmissionClient

    url = job_server(address)
    check_transport(url, insecure)
    try:
        return JobSubmissionClient(url)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise InputError(f"cannot reach the Ray job server at {url}: {first_line(e)}") from None


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
INSECURE_HELP = ("allow a plain http:// job server on another machine: the cluster's token "
                 "then crosses the network unencrypted (default: refuse; use https://)")


def check_transport(url: str, insecure: bool) -> None:
    parsed = urlsplit(url if "://" in url else "http://" + url)
    if parsed.scheme == "http" and parsed.hostname not in LOCAL_HOSTS and not insecure:
        raise InputError(f"refusing to send the cluster's token over plain http to "
                         f"{parsed.hostname}: use https://, or --insecure on a network you "
                         "trust")


def call(fn, *args, **kwargs):
    """One request to the job server; its refusals as one-line errors. "No available agent"
    (a head that has just started, or is restarting its agent) is retried for a while."""
    deadline = time.monotonic() + AGENT_WAIT_SECONDS
    while True:
        try:
            return fn(*args, **kwargs)
        except RuntimeError as e:
            if "No available agent" in str(e) and time.monotonic() < deadline:
                time.sleep(1)
                continue
            if "does not exist" in str(e) or "status code 404" in str(e):
                raise InputError(f"no such job on this cluster: {first_line(e)}") from None
            raise FramestyleError(f"the Ray job server refused: {first_line(e)}") from None
        except ConnectionError as e:
            raise FramestyleError(f"lost the Ray job server: {first_line(e)}") from None


def info(client, submission_id: str):
    return call(client.get_job_info, submission_id)


def describe(job) -> dict:
    """A job as --json shows it."""
    return {"submission_id": job.submission_id, "status": str(job.status.value),
            "entrypoint": job.entrypoint, "message": job.message,
            "start_time": job.start_time, "end_time": job.end_time,
            "exit_code": job.driver_exit_code, "metadata": job.metadata or {}}


def follow(client, submission_id: str, out=sys.stderr, poll: float = 1.0) -> object:
    """Print the job's log as it grows until the job ends; its final info."""
    printed = 0
    while True:
        job = info(client, submission_id)
        logs = call(client.get_job_logs, submission_id)
        out.write(logs[printed:])
        out.flush()
        printed = len(logs)
        if str(job.status.value) in TERMINAL:
            return job
        time.sleep(poll)


def exit_code_of(job) -> int:
    """The exit status to report for a finished job: its driver's own when it has one."""
    status = str(job.status.value)
    if status == "SUCCEEDED":
        return 0
    if job.driver_exit_code is not None and job.driver_exit_code > 0:
        return job.driver_exit_code
    return 130 if status == "STOPPED" else 1
