"""The chunk scheduler: chunks of any number of videos on one pool of stylizer actors (or, for
a small job on one machine, on threads of this process: ``run_chunks_here``).

Built on Ray's own primitives: each chunk is a streaming-generator call on an actor
(``ChunkWorker.process`` yields frame counts a few times a second, then the chunk's record),
and one driver loop ``ray.wait``s on all calls in flight. Models stay loaded in the actors
from one chunk to the next, so a batch of videos shares one pool.

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

import queue
import threading
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


class _Waiting:
    """Chunks waiting for a worker. A chunk that fails takes the waiting chunks of its group
    with it (handed to ``on_failed``; without one, every waiting chunk, and ``error`` keeps the
    first failure to raise once the chunks in flight are done)."""

    def __init__(self, tasks: list[ChunkTask], group: Callable[[ChunkTask], object],
                 on_failed: Callable[[ChunkTask, BaseException, list[ChunkTask]], None] | None):
        self.tasks = deque(tasks)
        self.error: BaseException | None = None
        self._group, self._on_failed = group, on_failed

    def fail(self, task: ChunkTask, e: BaseException) -> None:
        key = self._group(task)
        dropped = [t for t in self.tasks if self._group(t) == key]
        self.tasks = deque(t for t in self.tasks if self._group(t) != key)
        if self._on_failed is None:
            self.error, self.tasks = self.error or e, deque()
        else:
            self._on_failed(task, e, dropped)


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
    workers, resources = worker_pool(max((t.inference.cpus_per_gpu for t in tasks
                                          if t.inference.cpus_per_gpu), default=None))
    actor_cls = ray.remote(ChunkWorker).options(max_restarts=ACTOR_RESTARTS, max_task_retries=0,
                                                **resources)
    size = min(workers, len(tasks))
    actors = [actor_cls.remote() for _ in range(size)]
    idle, waiting = deque(), _Waiting(tasks, group, on_failed)
    running: dict = {}  # generator -> [actor, task, frames reported]
    # ready() call -> actor starting, restarting or replacing a lost one: the pool is sized to
    # the whole cluster, but what else runs there (a Serve app, another job) may hold part of
    # it, and a chunk handed to an actor that cannot start would wait for ever
    starting: dict = {actor.ready.remote(): actor for actor in actors}
    attempts: dict[int, int] = {}

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
        while running or waiting.tasks:
            while idle and waiting.tasks:
                actor, task = idle.popleft(), waiting.tasks.popleft()
                attempts[id(task)] = attempts.get(id(task), 0) + 1
                running[actor.process.remote(task)] = [actor, task, 0]
            if waiting.tasks and not actors:  # nothing left to run them on
                task = waiting.tasks.popleft()
                waiting.fail(task, ChunkFailed(f"no stylizer left to run {task.chunk.name} of "
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
                    waiting.fail(task, ChunkFailed(
                        f"{task.chunk.name} of {task.input_uri} lost its worker "
                        f"{attempts[id(task)]} times: {first_line(e)}"))
                else:
                    report.retried.append(task)
                    waiting.tasks.appendleft(task)
                continue
            except Exception as e:  # noqa: BLE001 - the chunk's own failure
                del running[ref]
                idle.append(actor)
                waiting.fail(task, unwrap(e))
                continue
            if isinstance(item, ChunkRecord):
                on_done(task, item)
            else:
                running[ref][2] += item
                on_frames(task, item)
    finally:
        for actor in actors:
            ray.kill(actor)
    if waiting.error is not None:
        raise waiting.error
    return report


def run_chunks_here(tasks: list[ChunkTask], workers: int,
                    on_frames: Callable[[ChunkTask, int], None],
                    on_done: Callable[[ChunkTask, ChunkRecord], None] = lambda task, record: None,
                    on_failed: Callable[[ChunkTask, BaseException, list[ChunkTask]], None]
                    | None = None,
                    group: Callable[[ChunkTask], object] = lambda task: task.input_uri
                    ) -> Report:
    """``run_chunks`` in this process, for a job too small to pay for starting Ray: ``workers``
    threads, each with its own ``ChunkWorker`` and so its own single-threaded replica of the
    network, as each CPU actor has (onnxruntime, OpenCV, numpy's large operations and the
    pipes to ffmpeg release the GIL). The callbacks run on the calling thread, as there. Without
    processes to lose there is nothing to retry: a chunk's failure fails its group, and a crash
    of the process ends the command, whose next run reuses every chunk stored before it."""
    report = Report()
    if not tasks:
        return report
    waiting = _Waiting(tasks, group, on_failed)
    events: queue.SimpleQueue = queue.SimpleQueue()  # (inbox, task, frames | record | end)
    finished = object()  # a chunk's last event: its worker is free

    def serve(inbox: queue.SimpleQueue) -> None:
        worker = ChunkWorker(threads=1)
        for task in iter(inbox.get, None):
            try:
                for item in worker.process(task):
                    events.put((inbox, task, item))
            except BaseException as e:  # noqa: BLE001 - the chunk's own failure, for the loop
                events.put((inbox, task, e))
            else:
                events.put((inbox, task, finished))

    inboxes = [queue.SimpleQueue() for _ in range(max(1, min(workers, len(tasks))))]
    # daemons: a command stopped by an error or ^C exits without waiting for chunks in flight
    for i, inbox in enumerate(inboxes):
        threading.Thread(target=serve, args=(inbox,), name=f"chunk-worker-{i}",
                         daemon=True).start()
    idle, running = deque(inboxes), 0
    try:
        while running or waiting.tasks:
            while idle and waiting.tasks:
                idle.popleft().put(waiting.tasks.popleft())
                running += 1
            inbox, task, item = events.get()
            if item is finished or isinstance(item, BaseException):
                idle.append(inbox)
                running -= 1
                if item is not finished:
                    waiting.fail(task, item)
            elif isinstance(item, ChunkRecord):
                on_done(task, item)
            else:
                on_frames(task, item)
    finally:
        for inbox in inboxes:
            inbox.put(None)
    if waiting.error is not None:
        raise waiting.error
    return report


def unwrap(error: BaseException) -> BaseException:
    """The user-facing exception inside a Ray task error, if there is one."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, Exception) else error

