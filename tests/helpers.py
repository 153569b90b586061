"""Helpers shared by the test modules (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Callable

import torch

from framestyle.jobs.cli import main
from framestyle.models import hub
from framestyle.models.transformer_net import TransformerNet


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """``framestyle ARGV`` in this process (sharing the session's Ray): code, stdout, stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def kill_cli_when(ready: Callable[[], bool], *argv, timeout: float = 150,
                  sig: int = signal.SIGKILL) -> tuple[int, str, float]:
    """Run ``framestyle ARGV`` as a real process with its own local Ray instance, wait until
    ``ready()`` holds, then send ``sig`` to its whole process group (Ray's processes too, as a
    terminal's Ctrl-C does). Returns its exit code, stderr and the seconds it took to exit."""
    proc = subprocess.Popen([sys.executable, "-m", "framestyle.jobs.cli", *map(str, argv)],
                            env={**os.environ, "RAY_ADDRESS": ""}, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    os.killpg(proc.pid, sig)
    sent = time.monotonic()
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of the group
    return proc.returncode, err.decode(), time.monotonic() - sent


def alive_actors(class_name: str) -> list:
    """The live actors of ``class_name`` in this session's Ray instance, asked of its own GCS:
    Ray's default lookup reads ``/tmp/ray/ray_current_cluster``, which another cluster on this
    machine (the node-loss test's) rewrites and removes."""
    import ray
    from ray.util.state import list_actors

    return list_actors(address=ray.get_runtime_context().gcs_address,
                       filters=[("class_name", "=", class_name), ("state", "=", "ALIVE")])


def seeded(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Non-trivial weights in eval mode, so identical outputs mean the weights really arrived."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return model.eval()


def publish(root: str, name: str, version: str, width: float) -> dict:
    """Publish a slim seeded TransformerNet as NAME@VERSION to the hub at ``root``."""
    return hub.publish_module(seeded(TransformerNet(width=width)), "transformer_net",
                              {"width": width}, name, version, root=root)


def load_checkpoint(path, arch: str | None = None, trust_code: bool = False):
    """(module, ModelRef) for a checkpoint file, through the hub as every job loads one."""
    ref = hub.resolve(str(path), arch=arch, trust_code=trust_code)
    return hub.load(ref), ref


def run_on_simulated_cluster(script: str, plan: dict, work, models: str,
                             timeout: float) -> dict:
    """Run ``tests/SCRIPT PLAN.json RESULT.json`` (a multi-node ``ray.cluster_utils.Cluster``
    of its own: the test session's Ray instance cannot become one) with the model hub at
    ``models``, and return its result.

    The script's Ray gets its own temp dir (short: Unix socket paths are limited to 107 bytes):
    the cluster's address file, sessions and sockets stay there, so even a killed run leaves
    nothing in /tmp/ray for a later plain ray.init() to try to join."""
    import json
    import shutil
    import tempfile
    from pathlib import Path

    plan_file, result_file = Path(work, "plan.json"), Path(work, "result.json")
    plan_file.write_text(json.dumps(plan))
    ray_tmp = tempfile.mkdtemp(prefix="fscl", dir="/tmp")
    env = {**os.environ, hub.HUB_ENV: models, "RAY_ADDRESS": "", "RAY_TMPDIR": ray_tmp}
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name(script)),
                               plan_file, result_file], env=env, capture_output=True, text=True,
                              timeout=timeout)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result_file.read_text())
