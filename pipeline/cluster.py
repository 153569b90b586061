"""Connecting to Ray and sizing worker pools to what the cluster has."""

from __future__ import annotations

import logging
import os

from ..core.errors import InputError, first_line

VERBOSE = True  # the CLI turns Ray's own messages off unless --verbose


def connect(address: str | None = None) -> None:
    """Join the cluster at ``address`` / ``RAY_ADDRESS``, or start a local Ray instance.

    Does nothing when Ray is already initialised in this process (tests share one instance).
    Token authentication stays on: a client joining a ``ray start`` head needs ``RAY_AUTH_MODE``
    set to ``token`` to send the token from ``~/.ray/auth_token`` (or ``RAY_AUTH_TOKEN``).
    """
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        # Read when Ray is first imported, so it must be set before.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    import ray

    if ray.is_initialized():
        return
    level = logging.INFO if VERBOSE else logging.ERROR
    if not address:
        # "local", not None: None would join whatever /tmp/ray/ray_current_cluster names (the
        # last `ray start` here, possibly long dead), and we promise a local instance
        ray.init(address="local", logging_level=level, log_to_driver=VERBOSE,
                 include_dashboard=False)
        return
    try:
        ray.init(address=address, logging_level=level, log_to_driver=VERBOSE)
    except (ConnectionError, RuntimeError) as e:
        raise InputError(f"cannot join the Ray cluster at {address}: {first_line(e)}") from None


def worker_pool(cpus_per_gpu: float = 1) -> tuple[int, dict]:
    """How many stylizer actors the cluster holds, and the resource options of each.

    One actor per GPU, holding ``cpus_per_gpu`` CPUs for its host side, when the cluster has
    GPUs (fewer actors where the CPUs cannot give each GPU its share); else one single-threaded
    actor per CPU (several single-threaded model replicas beat one multi-threaded replica for
    small convnets on CPU).
    """
    import ray

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    if gpus > 0:
        fed = int(resources.get("CPU", 0) // cpus_per_gpu) if cpus_per_gpu else gpus
        return max(1, min(gpus, fed)), {"num_gpus": 1, "num_cpus": cpus_per_gpu}
    return max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}
