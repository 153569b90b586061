"""``framestyle train``: check, train on Ray Train, publish.

Everything a user can get wrong is checked on the driver before a worker starts (the recipe and
its options, the data, the style image or teacher, the loss network's weights, the model hub),
with a one-line error and nothing published. Then a ``TorchTrainer`` runs ``loop.train_loop`` on
``--workers`` workers (DDP: gloo on CPUs, nccl with one GPU a worker), checkpointing to the run
folder ``STORAGE/NAME`` (a folder or ``s3://`` prefix, through a pyarrow filesystem that honours
``AWS_ENDPOINT_URL``). Running the same command again resumes that run; a worker that dies is
restarted from the last checkpoint by Ray Train (``FailureConfig``). At the end the recipe's
networks are published to the model hub with a card saying how they were made.
"""

from __future__ import annotations

import json
import os
import queue as stdlib_queue
import sys
import threading
import time
from typing import Any, Callable

from ..core import storage
from ..core.errors import FieldError, FramestyleError, InputError, first_line
from ..core.lease import Lease
from ..core.spec import Spec
from ..models import hub
from ..pipeline.cluster import check_shared, connect
from ..pipeline.progress import progress_bar
from .data import Augment
from .recipes import load_recipe
from .run_log import NOT_LOSSES, read_metrics
from .settings import TrainSettings

RUN_FILE, PUBLISHED_FILE = "run.json", "published.json"
RUNS_FOLDER = "framestyle-runs"


def train(settings: TrainSettings, options: dict, address: str | None = None,
          progress: bool = True, say=print, card: Callable[[Any], dict] | None = None) -> dict:
    """Train ``settings.recipe`` with its ``options`` (a dict of its Options' fields), resuming
    the run of the same name if there is one; return the summary. ``card(module)``, when given,
    adds to each published network's card (what a job built on training measured of it)."""
    recipe = load_recipe(settings.recipe)
    opts = recipe.Options(**options)
    if not hub.hub_root():
        raise InputError(f"no model hub to publish to: set ${hub.HUB_ENV} to a folder or "
                         "s3:// prefix")
    if "b" in recipe.datasets and not settings.data_b:
        raise FieldError("data_b", f"{settings.recipe} learns between two image sets: give the "
                                   "second with --data-b URI")
    if "b" not in recipe.datasets and settings.data_b:
        raise FieldError("data_b", f"{settings.recipe} reads one image set; --data-b is for "
                                   "cyclegan")
    run_root = settings.storage or default_storage(hub.hub_root())
    run_uri = storage.join(run_root, settings.name)
    # workers read the data and write checkpoints; the model is published to the hub
    check_shared(address, [*(("--data", uri) for uri in settings.data),
                           *(("--data-b", uri) for uri in settings.data_b or []),
                           ("--storage", run_root), (f"${hub.HUB_ENV}", hub.hub_root())])
    augment = Augment(settings.image_size, recipe.jitter, recipe.paired)
    sources = {"a": settings.data, **({"b": settings.data_b} if settings.data_b else {})}
    units = {name: _units(recipe, opts, uris, augment, name) for name, uris in sources.items()}
    prepared = recipe.prepare(settings, opts)
    with Lease(run_uri):
        done = _published(run_uri, settings)
        if done is not None:
            return done
        _claim_run(run_uri, settings, opts)
        connect(address)
        started = time.monotonic()
        result, events = _fit(recipe, settings, opts, prepared, run_root, units, augment,
                              progress, say)
        return _publish(recipe, settings, opts, run_uri, result, events,
                        time.monotonic() - started, card)


def default_storage(hub_root: str) -> str:
    """Runs live beside the model hub: ``.../models`` -> ``.../framestyle-runs``."""
    if storage.is_s3(hub_root):
        bucket, key = storage.split_s3(hub_root.rstrip("/"))
        return storage.join(f"s3://{bucket}", *key.split("/")[:-1], RUNS_FOLDER)
    return os.path.join(os.path.dirname(os.path.abspath(hub_root)), RUNS_FOLDER)


def _units(recipe, options, uris: list[str], augment: Augment, name: str):
    from ..pipeline.image_source import resolve_sources

    flag = "--data" if name == "a" else "--data-b"
    try:
        units = resolve_sources(uris)
    except InputError as e:
        raise InputError(f"{flag}: {e}") from None
    recipe.preflight(units, augment, flag, options)
    return units


def _claim_run(run_uri: str, settings: TrainSettings, options: Spec) -> None:
    """Record what this run trains; a re-run under the same name must train the same thing
    (its checkpoints would not fit otherwise). Steps, workers and data may change."""
    uri = storage.join(run_uri, RUN_FILE)
    record = {"recipe": settings.recipe, "image_size": settings.image_size,
              "options": options.model_dump(mode="json")}
    existing = storage.storage_for(uri).get_bytes(uri)
    if existing is not None:
        before = json.loads(existing)
        changed = [k for k in record if before.get(k) != record[k]]
        if changed:
            raise InputError(f"run {settings.name!r} at {run_uri} was started with other "
                             f"{', '.join(changed)}; resume it unchanged or pick a new --name")
        return
    storage.storage_for(uri).put_bytes(json.dumps(record, indent=2).encode(), uri)


def _published(run_uri: str, settings: TrainSettings) -> dict | None:
    """The summary of this run if it already finished and published at ``settings.steps``."""
    uri = storage.join(run_uri, PUBLISHED_FILE)
    data = storage.storage_for(uri).get_bytes(uri)
    if data is None:
        return None
    summary = json.loads(data)
    return {**summary, "already_published": True} if summary["steps"] == settings.steps else None


def ray_storage(run_root: str):
    """(storage_path, storage_filesystem) for Ray Train's RunConfig. An ``s3://`` root goes
    through pyarrow's S3 filesystem pointed at ``AWS_ENDPOINT_URL`` when set (MinIO, moto, any
    S3-compatible store), with the standard AWS credentials chain."""
    if not storage.is_s3(run_root):
        return os.path.abspath(run_root), None
    import pyarrow.fs
    from urllib.parse import urlparse

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    kwargs = {}
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs = {"endpoint_override": parsed.netloc or parsed.path,
                  "scheme": parsed.scheme or "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return run_root[len(storage.S3_SCHEME):].rstrip("/"), pyarrow.fs.S3FileSystem(**kwargs)


def _scaling(settings: TrainSettings):
    """One GPU a worker when the cluster has GPUs; on CPUs an even share of the cores, one
    core left over for reading and decoding images.

    A CPU worker never asks for more than the largest node holds less that one core: Ray places
    a worker on one node, and a share of the whole cluster could fit none of them (or leave a
    node no core for the data tasks, which would stall the run). After a node is lost, Ray Train
    restarts the workers with the same request on the nodes that remain.
    """
    import ray
    from ray.train import ScalingConfig

    resources = ray.cluster_resources()
    use_gpu = settings.use_gpu if settings.use_gpu is not None else resources.get("GPU", 0) > 0
    if use_gpu:
        return ScalingConfig(num_workers=settings.workers, use_gpu=True), 1
    largest = max((node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]),
                  default=1)
    share = min((resources.get("CPU", 1) - 1) / settings.workers, max(1, largest - 1))
    cpus = float(int(share)) if share >= 1 else max(0.25, share)
    return (ScalingConfig(num_workers=settings.workers, resources_per_worker={"CPU": cpus}),
            max(1, int(cpus)))


def _fit(recipe, settings, options, prepared, run_root, units, augment, progress, say):
    import ray
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchTrainer
    from ray.util.queue import Queue
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .loop import train_loop

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts steps
    batch = settings.batch_size or recipe.batch_size
    datasets = {name: recipe.dataset(found, augment, options, settings.workers * batch)
                for name, found in units.items()}
    storage_path, filesystem = ray_storage(run_root)
    scaling, threads = _scaling(settings)
    # On the driver's node, as Ray Train places its controller: a lost worker node must not
    # take the progress events with it.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={"recipe": recipe, "settings": settings, "options": options,
                           "prepared": prepared,
                           "run_uri": storage.join(run_root, settings.name), "progress": events,
                           "threads": threads},
        scaling_config=scaling,
        run_config=RunConfig(name=settings.name, storage_path=storage_path,
                             storage_filesystem=filesystem,
                             failure_config=FailureConfig(max_failures=settings.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
        datasets=datasets)
    outcome: dict = {}

    def fit() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            outcome["error"] = e

    thread = threading.Thread(target=fit, daemon=True, name="framestyle-fit")
    thread.start()
    log = _Progress(settings, progress, say)
    while thread.is_alive() or not events.empty():
        try:
            log.event(events.get(timeout=0.5))
        except stdlib_queue.Empty:  # ray.util.queue.Empty is one
            pass
    thread.join()
    log.close()
    if "error" in outcome:
        raise _user_error(outcome["error"])
    return outcome["result"], log


class _Progress:
    """The driver's view of the run: a step bar with step/s and losses, and what happened."""

    def __init__(self, settings: TrainSettings, enabled: bool, say):
        self.settings, self.enabled, self.say = settings, enabled, say
        self.bar = None
        self.starts: list[int] = []
        self.last: dict = {}

    def event(self, event: dict) -> None:
        if event["event"] == "start":
            self.starts.append(event["step"])
            if event["resumed"]:
                why = "" if len(self.starts) == 1 else " after a worker failure"
                self._say(f"resuming {self.settings.name} at step {event['step']}{why}")
            if self.bar is None:
                self.bar = progress_bar(self.settings.steps, "step", self.settings.name,
                                        enabled=self.enabled, initial=event["step"])
            else:
                self.bar.n = event["step"]
                self.bar.refresh()
            return
        self.last = event
        if self.bar is not None:
            self.bar.update(event["step"] - self.bar.n)
            losses = {k: f"{v:.3g}" for k, v in event.items() if k not in _NOT_LOSSES}
            self.bar.set_postfix(losses, refresh=False)

    def _say(self, text: str) -> None:
        from tqdm import tqdm

        with tqdm.external_write_mode(file=sys.stderr):  # above the bar, not through it
            self.say(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_NOT_LOSSES = NOT_LOSSES | {"event", "skipped_sources"}


def _user_error(error: BaseException) -> BaseException:
    """A failed fit as the error a user can act on: a worker's own FramestyleError (too little
    data, ...) keeps its message and exit code; anything else is a one-line failure."""
    failures = getattr(error, "worker_failures", None) or {}
    for failure in failures.values():
        cause = failure
        while cause is not None:
            if isinstance(cause, FramestyleError):
                return cause
            cause = getattr(cause, "cause", None) or cause.__cause__
    if isinstance(error, (FramestyleError, KeyboardInterrupt)):
        return error
    first = next(iter(failures.values()), error)
    return FramestyleError(f"training failed: {first_line(first)}")


def _publish(recipe, settings, options, run_uri, result, log: _Progress, seconds: float,
             card=None) -> dict:
    import torch

    from ..models import architectures
    from .loop import STATE_FILE

    with result.checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu",
                           weights_only=True)
    rows = read_metrics(run_uri)
    losses = {k: float(v) for k, v in (rows[-1] if rows else {}).items()
              if k not in _NOT_LOSSES and v not in ("", None)}
    provenance = {"recipe": settings.recipe, "data": settings.data, "data_b": settings.data_b,
                  "steps": state["step"], "image_size": settings.image_size,
                  "options": options.model_dump(mode="json"), "losses": losses,
                  "run": run_uri, "checkpoint": result.checkpoint.path}
    published = []
    for product in recipe.products(settings, options):
        module = architectures.get(product.arch).build(product.config)
        module.load_state_dict(state["recipe"]["nets"][product.net])
        extra = card(module.eval()) if card else {}
        written = hub.publish_module(module.eval(), product.arch, product.config,
                                     settings.name + product.suffix,
                                     provenance={**provenance, **extra})
        published.append(f"{written['name']}@{written['version']}")
    summary = {"name": settings.name, "recipe": settings.recipe, "steps": state["step"],
               "workers": settings.workers,
               "batch_size": settings.batch_size or recipe.batch_size,
               "seconds": round(seconds, 1), "train_seconds": state["seconds"],
               "losses": losses, "skipped": int(rows[-1].get("skipped", 0)) if rows else 0,
               "skipped_sources": log.last.get("skipped_sources", []),
               "resumed_from": log.starts[0] if log.starts and log.starts[0] else None,
               "worker_restarts": max(0, len(log.starts) - 1), "published": published,
               "run": run_uri}
    uri = storage.join(run_uri, PUBLISHED_FILE)
    storage.storage_for(uri).put_bytes(json.dumps(summary, indent=2).encode(), uri)
    return summary
