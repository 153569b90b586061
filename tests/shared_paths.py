"""Local paths on a multi-node cluster, simulated on this machine with per-node disks.

Run by ``test_shared_paths.py`` in a process of its own (the test session's Ray instance cannot
become a multi-node cluster): ``python tests/shared_paths.py PLAN.json RESULT.json``. A head
with no CPUs and two worker nodes (``ray.cluster_utils.Cluster``); each worker node checks paths
under a root of its own (``FRAMESTYLE_SIMULATED_NODE_DISK``), standing in for its local disk.
The plan's ``shared`` folder is linked into every node's root, as a filesystem mounted on every
node would be; anything else exists on the head's disk alone. Each command of the plan runs
through ``framestyle``'s own entry point; the result records its exit code and output.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from pathlib import Path

NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20}


def main(plan_file: str, result_file: str) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from framestyle.jobs.cli import main as framestyle
    from framestyle.pipeline.cluster import SIMULATED_DISK_ENV, only_this_node

    plan = json.loads(Path(plan_file).read_text())
    shared = Path(plan["shared"])
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": NODE["object_store_memory"]})
    for i in range(2):
        disk = Path(plan["disks"], f"node{i}")
        (disk / shared.parent.relative_to("/")).mkdir(parents=True)
        (disk / shared.relative_to("/")).symlink_to(shared)  # mounted on every node
        cluster.add_node(**NODE, env_vars={SIMULATED_DISK_ENV: str(disk)})
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    # with worker nodes besides the driver's, each video is assembled by a Ray task
    results = {"only_this_node": only_this_node()}
    try:
        for name, argv in plan["commands"].items():
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = framestyle(argv)
            results[name] = {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}
    finally:
        Path(result_file).write_text(json.dumps(results))
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(__file__))
    main(*sys.argv[1:])
