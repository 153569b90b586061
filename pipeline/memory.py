"""How much memory one stylizer may use, and what a frame costs: so no input, however large,
drives a worker into Ray's memory monitor (which kills it, and Ray retries it, again and again).

A stylizer's budget is its share of its node: Ray's ``memory`` resource of the node (what Ray
leaves for tasks and actors after the object store) divided among the stylizers the node runs
(one per CPU, or one per GPU: ``cluster.worker_pool``), less a margin for the decode and encode
stages beside it. Outside Ray (``framestyle image``) it is most of the machine's memory. On a GPU
it is most of the GPU's memory. The stylizer compares a frame's cost with the budget and runs
what does not fit in tiles (``models.tiling``).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from pathlib import Path

CPU_SHARE = 0.8  # of a stylizer's share of the node's memory; the rest for its queues
GPU_SHARE = 0.7  # of the GPU's memory: the allocator's caching and cuDNN workspaces need room
LOCAL_SHARE = 0.5  # of the machine's memory, outside Ray


def physical_memory() -> int:
    """This machine's (or container's) memory in bytes: the cgroup limit when there is one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit_file).read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def worker_budget(device) -> int:
    """Bytes the stylizer on ``device`` may use for a forward pass."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.mem_get_info(device)[1] * GPU_SHARE)
    share = _node_share()
    if share is None:
        return process_budget(1)
    memory, workers = share
    return int(memory * CPU_SHARE / max(1, workers))


def process_budget(replicas: int) -> int:
    """Bytes each of ``replicas`` stylizers sharing this process outside Ray may use."""
    return int(physical_memory() * LOCAL_SHARE * CPU_SHARE / max(1, replicas))


def _node_share() -> tuple[float, float] | None:
    """(memory for tasks on this node, stylizers it runs); None outside Ray."""
    ray = sys.modules.get("ray")  # a process that never imported Ray is outside it
    try:
        if ray is not None and ray.is_initialized():
            node_id = ray.get_runtime_context().get_node_id()
            for node in ray.nodes():
                if node["NodeID"] == node_id and node.get("Alive", True):
                    resources = node["Resources"]
                    slots = resources.get("GPU") or resources.get("CPU") or 1
                    return resources.get("memory", physical_memory() * LOCAL_SHARE), slots
    except Exception:  # noqa: BLE001 - a budget from the machine alone is still a budget
        pass
    return None


class SharedBudget:
    """Bytes that stylizers on threads of one process share. A pass holds what it needs while
    it runs: small frames run side by side, and a frame too large for one stylizer's share runs
    whole once the others have left it room, instead of in tiles. Passes are let in in the order
    they asked, so a large one is not kept waiting behind small ones for ever."""

    def __init__(self, total: int):
        self.total = total
        self._free = total
        self._queue: deque = deque()  # tickets of the passes waiting, first come first in
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: float):
        """Wait until ``nbytes`` (at most the whole budget) are free and this pass is first in
        line, and hold them while the block runs."""
        nbytes = min(int(nbytes), self.total)
        ticket = object()
        with self._changed:
            self._queue.append(ticket)
            try:
                self._changed.wait_for(lambda: self._queue[0] is ticket and self._free >= nbytes)
            finally:  # in, or given up (an interrupt): out of the line either way
                self._queue.remove(ticket)
                self._changed.notify_all()  # the next in line may fit beside this one
            self._free -= nbytes
        try:
            yield
        finally:
            with self._changed:
                self._free += nbytes
                self._changed.notify_all()


_SHARED: dict[int, SharedBudget] = {}
_SHARED_LOCK = threading.Lock()


def shared_budget(total: int) -> SharedBudget:
    """This process's ``SharedBudget`` of ``total`` bytes: one for all the stylizers that
    share it."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(total, SharedBudget(total))


def holding(budget: SharedBudget | None, nbytes: float):
    """``budget.hold(nbytes)``, or nothing to wait for where a stylizer shares no budget."""
    return budget.hold(nbytes) if budget is not None else contextlib.nullcontext()
