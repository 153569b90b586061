"""Jobs that lose a worker node midway, on a Ray cluster of three nodes simulated on this machine.

Run by ``test_node_loss.py`` in a process of its own (the test session's Ray instance cannot
become a multi-node cluster): ``python tests/node_loss.py PLAN.json RESULT.json``. The plan names
the inputs and outputs of three commands, a bulk video job, an images job and a training run;
each runs in this process through ``framestyle``'s own entry point on a cluster of a head with no
CPUs and two worker nodes (``ray.cluster_utils.Cluster``), and once it has made a first piece of
progress the worker node holding its busiest actor is removed. A fresh node joins before the next
command, as an autoscaler would replace a lost spot node. The result records each command's exit
code, output and error, and what the job had done when its node went.
"""

from __future__ import annotations

import contextlib
import io
import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Callable

NODE = {"num_cpus": 2, "object_store_memory": 150 * 2**20}
DEADLINE = 150  # seconds for a command to reach the point where its node is removed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def busiest_node(class_names: list[str]) -> str | None:
    """The node id of a live actor of the first of ``class_names`` that has one (Ray Data
    names its actors after the stage's class), or None while there is none."""
    from ray.util.state import list_actors

    alive = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    for class_name in class_names:
        actors = [a for a in alive if class_name in a.class_name and a.node_id]
        if actors:
            return actors[0].node_id
    return None


def run_and_lose_a_node(cluster, argv: list[str], progressed: Callable[[], int],
                        actor_classes: list[str]) -> dict:
    """``framestyle ARGV`` in a thread; once ``progressed()`` is positive, remove the worker
    node that holds an actor of the first of ``actor_classes`` alive then. Returns the
    command's outcome."""
    from framestyle.jobs.cli import main

    out, err, outcome = io.StringIO(), io.StringIO(), {}

    def run() -> None:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            outcome["code"] = main(argv)

    thread = threading.Thread(target=run)
    started = time.monotonic()
    thread.start()
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline and thread.is_alive() and not progressed():
        time.sleep(0.05)
    node_id = busiest_node(actor_classes)
    lost = {"progress_at_loss": progressed(), "running_at_loss": thread.is_alive()}
    victims = [n for n in cluster.worker_nodes if n.node_id == node_id]
    if victims and thread.is_alive():
        cluster.remove_node(victims[0], allow_graceful=False)  # as a machine that vanishes
        lost["node_removed"] = node_id
    else:  # what there was instead, for the test's message
        from ray.util.state import list_actors

        lost["actors"] = [(a.class_name, a.node_id) for a in list_actors(limit=1000)]
        lost["worker_nodes"] = [n.node_id for n in cluster.worker_nodes]
    thread.join(timeout=300)
    return {**outcome, **lost, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "finished": not thread.is_alive(), "seconds": round(time.monotonic() - started, 1)}


def main(plan_file: str, result_file: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    plan = json.loads(Path(plan_file).read_text())
    started = time.monotonic()
    # the dashboard serves the state API that finds the actors; its default port may be taken
    # by the test session's own Ray
    # a removed node is declared dead after 2 missed health checks 1 s apart, not Ray's
    # default 5 x 3 s: a raylet that vanished refuses at once, and the test waits less for it
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": True, "dashboard_port": free_port(),
        "object_store_memory": NODE["object_store_memory"], "_system_config": {
            "health_check_period_ms": 1000, "health_check_failure_threshold": 2}})
    for _ in range(2):
        cluster.add_node(**NODE)
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    results: dict = {"cluster_start_seconds": round(time.monotonic() - started, 1)}
    try:
        for kind in ("video", "images", "train"):
            job = plan[kind]
            watched = Path(job["watch"])
            minimum = job.get("at_least", 1)

            def progressed(watched=watched, pattern=job["pattern"], minimum=minimum) -> int:
                found = len(list(watched.glob(pattern))) if watched.exists() else 0
                return found if found >= minimum else 0

            results[kind] = run_and_lose_a_node(cluster, job["argv"], progressed, job["actor"])
            cluster.add_node(**NODE)  # the replacement, before the next command
            cluster.wait_for_nodes()
    finally:
        Path(result_file).write_text(json.dumps(results))
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
