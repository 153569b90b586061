"""The chunk scheduler: chunks of any number of videos on one pool of stylizer actors.

Built on Ray's own primitives: each chunk is a streaming-generator call on an actor
(``ChunkWorker.process`` yields frame counts, then the chunk's record), and one driver loop
``ray.wait``s on all calls in flight. Models stay loaded in the actors from one chunk to the next,
so a batch of videos shares one pool.

Faults cost only the chunk in flight. When an actor's process dies (killed, out of memory, node
lost), Ray restarts the actor (``max_restarts``) and the loop puts its chunk back at the front of
the queue for whichever actor is free next, up to ``max_attempts`` tries per chunk; an actor that
cannot be restarted any more is replaced by a new one while the replacement budget lasts. A
restarted or replacement actor, like every actor at the start, gets work only once it answers
``ready``: after a node is lost, or while other work holds part of the cluster, there may be no
room for it, and a chunk handed to it would wait for capacity that may never come while the
other actors run out of work. The job ends when every chunk is done, whether
or not such an actor ever started. A chunk that fails by itself (a bad input, a full disk) is not
retried, and fails its group (its video): no other chunk of that group starts, chunks in flight
finish (so their work is kept for the next run), and the other groups go on. With no
``on_failed`` to hand that to, the error is raised once the chunks in flight are done.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .chunk_worker import ChunkRecord, ChunkTask, ChunkWorker
from ..core.errors import first_line
from .cluster import worker_pool

ACTOR_RESTARTS = 2  # per actor, by Ray
MAX_ATTEMPTS = 3  # per chunk


class ChunkFailed(RuntimeError):
    """A chunk kept losing its actor."""


@dataclass
class Report:
    """What the scheduler did: chunks retried after losing their actor, actors replaced."""

    retried: list[ChunkTask] = field(default_factory=list)  # once per retry
    actors_replaced: int = 0


def run_chunks(tasks: list[ChunkTask], on_frames: Callable[[ChunkTask, int], None],
               on_done: Callable[[ChunkTask, ChunkRecord], None] = lambda task, record: None,
               on_failed: Callable[[ChunkTask, BaseException, list[ChunkTask]], None] | None = None,
               group: Callable[[ChunkTask], object] = lambda task: task.input_uri,
               max_attempts: int = MAX_ATTEMPTS) -> Report:
    """Process ``tasks`` on a pool of stylizer actors sized to the cluster.

    ``on_frames(task, n)`` is called as frames are written (``n`` is negative when a chunk's
    frames are taken back because its actor died and it starts over); ``on_done(task, record)``
    when a chunk is stored, on the driver thread, so a caller can assemble a video as soon as its
    last chunk is in; ``on_failed(task, error, dropped)`` when a chunk fails its group, with the
    group's pending tasks that will not run now.
    """
    import ray

    report = Report()
    if not tasks:
        return report
    workers, resources = worker_pool(max(t.inference.cpus_per_gpu for t in tasks))
    actor_cls = ray.remote(ChunkWorker).options(max_restarts=ACTOR_RESTARTS, max_task_retries=0,
                                                **resources)
    size = min(workers, len(tasks))
    actors = [actor_cls.remote() for _ in range(size)]
    idle, pending = deque(), deque(tasks)
    running: dict = {}  # generator -> [actor, task, frames reported]
    # ready() call -> actor starting, restarting or replacing a lost one: the pool is sized to
    # the whole cluster, but what else runs there (a Serve app, another job) may hold part of
    # it, and a chunk handed to an actor that cannot start would wait for ever
    starting: dict = {actor.ready.remote(): actor for actor in actors}
    attempts: dict[int, int] = {}
    error: BaseException | None = None  # the first failure, raised without on_failed

    def fail(task: ChunkTask, e: BaseException) -> None:
        nonlocal pending, error
        key = group(task)
        dropped = [t for t in pending if group(t) == key]
        pending = deque(t for t in pending if group(t) != key)
        if on_failed is None:
            error, pending = error or e, deque()
        else:
            on_failed(task, e, dropped)

    def lost(actor, e: BaseException) -> None:
        """``actor``'s process died: wait for Ray's restart, or replace an actor out of them."""
        if isinstance(e, ray.exceptions.ActorDiedError):  # no restarts left
            actors.remove(actor)
            if report.actors_replaced >= 2 * size:
                return
            report.actors_replaced += 1
            actor = actor_cls.remote()
            actors.append(actor)
        starting[actor.ready.remote()] = actor

    try:
        while running or pending:
            while idle and pending:
                actor, task = idle.popleft(), pending.popleft()
                attempts[id(task)] = attempts.get(id(task), 0) + 1
                running[actor.process.remote(task)] = [actor, task, 0]
            if pending and not actors:  # nothing left to run them on
                task = pending.popleft()
                fail(task, ChunkFailed(f"no stylizer left to run {task.chunk.name} of "
                                       f"{task.input_uri}: every worker was lost"))
                continue
            (ref,), _ = ray.wait([*running, *starting], num_returns=1)
            if ref in starting:
                actor = starting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)
                except ray.exceptions.RayActorError as e:
                    lost(actor, e)
                continue
            actor, task, reported = running[ref]
            try:
                item = ray.get(next(ref))
            except StopIteration:
                del running[ref]
                idle.append(actor)
                continue
            except ray.exceptions.RayActorError as e:
                del running[ref]
                on_frames(task, -reported)
                lost(actor, e)
                if attempts[id(task)] >= max_attempts or not actors:
                    fail(task, ChunkFailed(f"{task.chunk.name} of {task.input_uri} lost its "
                                           f"worker {attempts[id(task)]} times: {first_line(e)}"))
                else:
                    report.retried.append(task)
                    pending.appendleft(task)
                continue
            except Exception as e:  # noqa: BLE001 - the chunk's own failure
                del running[ref]
                idle.append(actor)
                fail(task, unwrap(e))
                continue
            if isinstance(item, ChunkRecord):
                on_done(task, item)
            else:
                running[ref][2] += item
                on_frames(task, item)
    finally:
        for actor in actors:
            ray.kill(actor)
    if error is not None:
        raise error
    return report


def unwrap(error: BaseException) -> BaseException:
    """The user-facing exception inside a Ray task error, if there is one."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error

