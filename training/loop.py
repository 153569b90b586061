"""The training loop every Ray Train worker runs, whatever the recipe.

Resume is Ray Train's: ``get_checkpoint()`` hands a (re)started worker group the latest
checkpoint, which holds the recipe's networks, optimizers and LR schedules, the step, the
elapsed time and the data position. All workers then step in lockstep (DDP), report together
every ``checkpoint_every`` steps with a checkpoint; every ``log_every`` steps the first worker
writes the run folder's metrics (plot and samples every ``sample_every``) and tells the
driver's progress bar through a queue.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from pathlib import Path

from ..core import tempdirs

STATE_FILE = "state.pt"


def train_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from .data import Batches, Position
    from .run_log import RunLog

    settings, options = config["settings"], config["options"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(max(1, int(config.get("threads", 1))))
    torch.manual_seed(settings.seed)  # one initialisation (DDP also broadcasts rank 0's)
    recipe = config["recipe"](settings, options, config["prepared"], device)
    recipe.wrap(ray.train.torch.prepare_model)

    step, seconds, position = 0, 0.0, Position()
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder, STATE_FILE), map_location=device, weights_only=True)
        recipe.load_state_dict(saved["recipe"])
        step, seconds, position = saved["step"], saved["seconds"], Position(**saved["position"])
    torch.manual_seed(settings.seed + 1000 * rank + step)  # dropout, pools: fresh per worker
    progress = config.get("progress")
    log = RunLog(config["run_uri"], step) if rank == 0 else None
    if rank == 0 and progress is not None:
        progress.put({"event": "start", "step": step, "resumed": checkpoint is not None})

    shards = {name: ray.train.get_dataset_shard(name) for name in recipe.datasets}
    batches = Batches(shards, recipe.batch, device, recipe.paired, position)
    sums: dict[str, float] = defaultdict(float)
    count, started = 0, time.monotonic() - seconds
    while step < settings.steps:
        batch = next(batches)
        if not _everyone(batch is not None, world, device):
            continue  # some worker's batch was all unreadable images: all skip it
        losses = recipe.step(batch)
        recipe.advance()
        step += 1
        count += 1
        for key, value in losses.items():
            sums[key] += value
        checkpointing = step % settings.checkpoint_every == 0 or step == settings.steps
        if not (checkpointing or step % settings.log_every == 0):
            continue
        skipped = _union(batches.skipped, world)
        metrics = {"step": step, "epoch": position.epochs.get(recipe.datasets[0], 0),
                   "seconds": round(time.monotonic() - started, 2),
                   **{k: v / count for k, v in sums.items()}, "skipped": len(skipped)}
        sums.clear()
        count = 0
        if log is not None:
            log.add(metrics)
            if step % settings.sample_every == 0 or step == settings.steps:
                log.samples(step, recipe.samples(batch))
                log.plot(f"{settings.recipe} {settings.name}")
            if progress is not None:
                progress.put({"event": "metrics", **metrics, "skipped_sources": sorted(skipped)[:10]})
        if not checkpointing:
            # (ray.train.report waits for the controller's next poll, up to 2 s: progress goes
            # to the driver through the queue instead, and reports carry checkpoints only)
            continue
        with tempdirs.scratch("ckpt") as folder:
            saved_checkpoint = None
            if rank == 0:
                torch.save({"recipe": recipe.state_dict(), "step": step,
                            "seconds": metrics["seconds"],
                            "position": dataclasses.asdict(position)},
                           Path(folder, STATE_FILE))
                saved_checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved_checkpoint)


def _everyone(ok: bool, world: int, device) -> bool:
    """Whether ``ok`` holds on every worker (one tiny all-reduce)."""
    if world == 1:
        return ok
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _union(names: set[str], world: int) -> set[str]:
    """The unreadable sources every worker has met."""
    if world == 1:
        return set(names)
    import torch.distributed as dist

    gathered: list = [None] * world
    dist.all_gather_object(gathered, names)
    return set().union(*gathered)
