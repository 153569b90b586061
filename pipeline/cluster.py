"""Connecting to Ray and sizing worker pools to what the cluster has."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

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


def local_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the machine's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_pool(cpus_per_gpu: float | None = None) -> tuple[int, dict]:
    """How many stylizer actors the cluster holds, and the resource options of each.

    One actor per GPU, holding ``cpus_per_gpu`` CPUs of its node for its host side (by default
    its GPU's share of its node's CPUs, ``gpu_share_of_cpus``), when the cluster has GPUs:
    fewer actors on a node whose CPUs cannot give each of its GPUs that share. Else one
    single-threaded actor per CPU (several single-threaded model replicas beat one
    multi-threaded replica for small convnets on CPU).
    """
    import ray

    resources = ray.cluster_resources()
    if resources.get("GPU", 0) >= 1:
        nodes = gpu_nodes(ray.nodes())
        share = cpus_per_gpu or gpu_share_of_cpus(nodes)
        actors = sum(min(int(n["Resources"]["GPU"]), int(n["Resources"].get("CPU", 0) // share))
                     for n in nodes)
        return max(1, actors), {"num_gpus": 1, "num_cpus": share}
    return max(1, int(resources.get("CPU", 1))), {"num_cpus": 1}


def gpu_nodes(nodes: list[dict]) -> list[dict]:
    """The live nodes of ``nodes`` (``ray.nodes()``) that have a whole GPU or more."""
    return [node for node in nodes
            if node.get("Alive") and node.get("Resources", {}).get("GPU", 0) >= 1]


def gpu_share_of_cpus(nodes: list[dict]) -> float:
    """The whole CPUs per GPU that every GPU node of ``nodes`` (``gpu_nodes``) can give each of
    its GPUs: 4 on a node of 4 CPUs and one GPU, 24 on one of 192 and 8; the smallest share
    where nodes differ, so that every GPU gets an actor; at least 1.

    A GPU stylizer runs only as fast as its host side (decode, optical flow, encode) feeds it,
    and that side runs on as many threads as the actor holds CPUs (benchmarks.host_ceiling:
    1080p with the blend on the GPU, 16.9 frames/s on one CPU, 31.3 on two). A video job has
    nothing else to run on a GPU node, so a fixed share of 2 left the rest of the node idle.
    """
    shares = [node["Resources"].get("CPU", 0) // node["Resources"]["GPU"] for node in nodes]
    return float(max(1, min(shares))) if shares else 1.0


# --- paths every node must see ------------------------------------------------------------------

# A node's local disk, for tests on a cluster simulated on one machine (tests/shared_paths.py):
# the root that node's checks put in front of every path, as if its disk were its own.
SIMULATED_DISK_ENV = "FRAMESTYLE_SIMULATED_NODE_DISK"
SHARED_CHECK_SECONDS = 60
# (the cluster's nodes, a folder) every one of those nodes was found to see: a bulk job over
# thousands of videos in one folder checks that folder once, not once per video
_SEEN_BY_ALL: set[tuple[frozenset, str]] = set()


def joins_a_cluster(address: str | None) -> bool:
    """Whether ``connect(address)`` joins a running cluster, which may have many nodes, rather
    than starting a local instance (one node, which sees every local path)."""
    ray = sys.modules.get("ray")  # not imported for the answer: a small job may never need it
    return bool(address or os.environ.get("RAY_ADDRESS")) or (ray is not None
                                                               and ray.is_initialized())


def only_this_node() -> bool:
    """Whether the connected Ray cluster is this machine alone (a local instance, or a one-node
    cluster the driver runs on): then a thread of the driver does what a task would, on the same
    machine, with the same paths, and without waiting for a worker process to start (half a
    second for a video's assembly on 2 cores)."""
    import ray
    from ray.util.client import ray as client

    if client.is_connected():  # ray://: this process is not on the cluster, whatever its size
        return False
    alive = [node for node in ray.nodes() if node.get("Alive")]
    return len(alive) == 1 and alive[0]["NodeID"] == ray.get_runtime_context().get_node_id()


def check_shared(address: str | None, paths: list[tuple[str, str | None]]) -> None:
    """``require_shared(paths)`` on the cluster at ``address``, where it may have other nodes."""
    if joins_a_cluster(address):
        connect(address)
        require_shared(paths)


def require_shared(paths: list[tuple[str, str | None]]) -> None:
    """Refuse, in one line, a local path that not every node of a multi-node cluster can see.

    ``paths`` pairs how the user named each path (``OUT``, ``--data``) with it; s3:// URIs
    and None pass. Chunks, images, checkpoints and models are read and written by whichever node
    runs that step, so on a cluster of more than one node a path on one machine's disk would
    send work to disks that no one else reads. Each path is checked for real: a marker file
    written beside it (or, where that folder is read-only, the file itself) must look the same
    from every node, so a shared filesystem mounted at the same path on every node passes.
    """
    import ray

    from ..core import storage

    local = [(name, path) for name, path in paths if path and not storage.is_s3(path)]
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if not local or len(nodes) <= 1:
        return
    looks = ray.remote(num_cpus=0)(_looks)
    node_ids = frozenset(node["NodeID"] for node in nodes)
    for name, path in local:
        evidence = _evidence(os.path.abspath(path))
        if (node_ids, evidence.folder) in _SEEN_BY_ALL:
            continue
        with evidence as (target, expected):
            seen = ray.get([looks.options(scheduling_strategy=_on(node)).remote(target)
                            for node in nodes], timeout=SHARED_CHECK_SECONDS)
        blind = [node["NodeManagerAddress"] for node, saw in zip(nodes, seen) if saw != expected]
        if blind:
            raise InputError(
                f"{name} {path} is on a local disk that {len(blind)} of this cluster's "
                f"{len(nodes)} nodes cannot see ({', '.join(sorted(set(blind))[:3])}): on a "
                "cluster use an s3:// URI, or a filesystem mounted at the same path on every node")
        _SEEN_BY_ALL.add((node_ids, evidence.folder))


def _on(node: dict):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)


class _evidence:
    """(path to look at, what every node must see there): a fresh marker file in the nearest
    existing folder of ``path``, removed afterwards; where that folder cannot be written, the
    size and modification time of what exists."""

    def __init__(self, path: str):
        folder = path
        while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        self.folder = folder
        self.existing = path if os.path.exists(path) else folder
        self.marker = os.path.join(folder, f".framestyle-shared-{os.getpid()}-{id(self):x}")

    def __enter__(self) -> tuple[str, object]:
        import uuid

        token = uuid.uuid4().hex
        try:
            with open(self.marker, "x") as f:
                f.write(token)
        except OSError:  # a read-only folder: the input itself must look the same everywhere
            self.marker = None
            return self.existing, _looks(self.existing)
        return self.marker, ("marker", token)

    def __exit__(self, *exc) -> None:
        if self.marker:
            with contextlib.suppress(OSError):
                os.remove(self.marker)


def _looks(path: str):
    """What this node sees at ``path``: a marker's token, a file's size and time, or None."""
    root = os.environ.get(SIMULATED_DISK_ENV)
    if root:
        path = os.path.join(root, path.lstrip("/"))
    try:
        if os.path.basename(path).startswith(".framestyle-shared-"):
            with open(path) as f:
                return ("marker", f.read())
        stat = os.stat(path)
        return ("file", stat.st_size, stat.st_mtime_ns)
    except OSError:
        return None
