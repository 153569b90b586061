"""``framestyle models prune``: a smaller, faster copy of a style network, by evolutionary channel
pruning (Shu et al., *Co-Evolutionary Compression for Unpaired Image Translation*, ICCV 2019).

1. **Search** (``evolution``): a population of binary codes over the parent's prunable channels
   (``models.pruning``). An individual's fitness is the error of the pruned network against the
   parent's own output on content images from ``--data`` (VGG16 perceptual error, or pixel L1 +
   gradient error that needs no VGG weights) plus ``gamma`` x its cost (parameters, or
   multiply-adds, as a fraction of the parent's). Each generation is scored in parallel: Ray
   tasks, one per CPU of the cluster, each scoring a share of the population. The search state
   is saved to the run folder after every generation, so a re-run continues it.
2. **A physically smaller network**: the best code's channels are cut out of the weights (not
   zeroed) and the network is built with the smaller layer sizes.
3. **Fine-tuning** by distillation from the parent: the ``distill`` recipe on Ray Train,
   starting from the pruned weights (``--finetune-steps``; checkpoints and resume are the
   trainer's).
4. **Publication** to the model hub as NAME, its card recording the parent, the code, and the
   measured speed and error against the parent.

Works for every network whose architecture lists ``channel_groups``: TransformerNet, CycleGAN's
ResNet generator, and the built-in multi-style network, one style (or mix) at a time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import storage, tempdirs
from ..core.lease import Lease
from ..core.errors import FieldError, InputError
from ..models import architectures, hub
from ..models.export import UnitRangeModel
from ..models.multistyle import one_style_state
from ..models.pruning import ChannelGroup, kept_channels, prune_state
from ..pipeline.cluster import check_shared, connect
from ..pipeline.progress import progress_bar
from ..pipeline.style_image import resolve_style
from . import evolution
from .losses import gradient_l1
from .settings import PruneSettings, TrainSettings

SEARCH_FILE, RESULT_FILE = "prune-search.json", "prune-result.json"
SEARCH_FOLDER = "search"  # its lease: one search of a NAME at a time
PRUNED_FOLDER = "pruned"
SPEED_SIZE = (360, 640)  # frames/s on the card are measured at 640x360
PSNR_CAP_DB = 99.0  # identical outputs: JSON has no infinity
MACS_PROBE = 64  # multiply-adds are counted on a 64x64 input (they scale with the pixels)
# The fine-tune's learning rate falls linearly to zero from its first step. At a constant rate
# the student ends wherever Adam's last steps threw it: a TransformerNet cut to 11% of its
# parameters reached 28.3 dB against its parent after 1000 steps, and 32.2 dB with the decay
# (same code and data; docs/compression.md).
FINETUNE_DECAY_FROM = 0.0


@dataclass
class Parent:
    text: str
    identity: dict
    arch: architectures.Architecture
    config: dict
    state: dict[str, torch.Tensor]

    @property
    def groups(self) -> list[ChannelGroup]:
        return self.arch.channel_groups(self.config)

    def module(self, keep: dict[str, list[int]] | None = None) -> nn.Module:
        """The parent, or the physically smaller network that keeps ``keep``'s channels."""
        config = self.child_config(keep) if keep else self.config
        net = self.arch.build(config)
        net.load_state_dict(prune_state(self.state, self.groups, keep) if keep else self.state)
        return net.eval()

    def child_config(self, keep: dict[str, list[int]]) -> dict:
        return {**self.config, "channels": kept_channels(keep)}

    def unit_range(self, net: nn.Module) -> UnitRangeModel:
        return UnitRangeModel(net, self.arch.pixels, None)


def load_parent(style: str, trust_code: bool = False) -> Parent:
    """The network to prune; a built-in style (or mix) becomes a one-style network first."""
    ref = resolve_style(style, trust_code=trust_code)
    if ref.arch.channel_groups is None:
        prunable = ", ".join(a.name for a in architectures.ARCHITECTURES.values()
                             if a.channel_groups and not a.conditioned)
        raise InputError(f"{style}: {ref.arch.name} networks cannot be pruned; prunable: "
                         f"{prunable} and builtin:N")
    state = hub.load(ref).state_dict()
    arch, config = ref.arch, dict(ref.config)
    if arch.conditioned:  # the built-in network: the one style asked for
        state = one_style_state(state, ref.condition)
        arch = architectures.get("one_style")
        config = arch.recognise(state)
    return Parent(style, ref.identity, arch, config, state)


def content_images(data: list[str], count: int, size: int) -> torch.Tensor:
    """Up to ``count`` images from ``data``, scaled and centre-cropped to ``size`` squares,
    as (N, 3, size, size) floats in [0, 1]."""
    from PIL import Image

    from ..pipeline.image_decode import ImageError, decode_image
    from ..pipeline.image_source import read_guarded, resolve_sources

    try:
        units = resolve_sources(data)
    except InputError as e:
        raise InputError(f"--data: {e}") from None
    images, problems = [], []
    for unit in units:
        for item in read_guarded(unit):
            if len(images) >= count:
                break
            try:
                if item.failure:
                    raise ImageError(item.failure)
                rgb = decode_image(item.data, max_side=size * 4).rgb
            except ImageError as e:
                problems.append(f"{item.source}: {e}")
                continue
            h, w = rgb.shape[:2]
            scale = size / min(h, w)
            picture = Image.fromarray(rgb).resize((max(size, round(w * scale)),
                                                   max(size, round(h * scale))), Image.BICUBIC)
            left, top = (picture.width - size) // 2, (picture.height - size) // 2
            images.append(np.asarray(picture.crop((left, top, left + size, top + size))))
    if not images:
        raise InputError(f"--data: no readable image among {len(problems)} file(s)"
                         + (f"; first: {problems[0]}" if problems else ""))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


# --- scoring ---------------------------------------------------------------------------------

class ErrorMeasure:
    """The error of outputs against the parent's: relative VGG16 feature error, or pixel L1 +
    image-gradient L1 (the distillation loss)."""

    def __init__(self, kind: str, vgg_state: dict | None, seed: int = 0):
        from .fast_style import loss_network

        self.vgg = loss_network(vgg_state, seed) if kind == "perceptual" else None

    @torch.no_grad()
    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> float:
        if self.vgg is None:
            return float(F.l1_loss(outputs, targets) + gradient_l1(outputs, targets))
        errors = [F.mse_loss(a, b) / b.pow(2).mean().clamp_min(1e-12)
                  for a, b in zip(self.vgg(outputs), self.vgg(targets))]
        return float(sum(errors) / len(errors))


def count_macs(net: nn.Module, probe: torch.Tensor) -> int:
    """Multiply-adds of one forward pass on ``probe``: every module holding 4-D weights is a
    convolution (ConvTranspose2d's count per input pixel, the others per output pixel)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        for p in module.parameters(recurse=False):
            if p.dim() == 4:
                pixels = (inputs[0] if isinstance(module, nn.ConvTranspose2d) else output)
                total += p.numel() * pixels.shape[-1] * pixels.shape[-2]

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if any(p.dim() == 4 for p in m.parameters(recurse=False))]
    try:
        with torch.no_grad():
            net(probe)
    finally:
        for h in handles:
            h.remove()
    return total


def score_codes(job: dict, codes: list[np.ndarray]) -> list[dict]:
    """Error, parameters and multiply-adds of the networks ``codes`` prune ``job['parent']`` to
    (a Ray task's share of a generation)."""
    torch.set_num_threads(1)  # one task per CPU
    parent: Parent = job["parent"]
    measure = ErrorMeasure(job["error"], job["vgg"], job["seed"])
    critic = None
    if job.get("discriminator"):
        arch, config, state = job["discriminator"]
        critic = architectures.get(arch).build(config).eval()
        critic.load_state_dict(state)
    names, sizes = zip(*((g.name, g.size) for g in parent.groups))
    out = []
    for code in codes:
        net = parent.unit_range(parent.module(evolution.split(code, list(names), list(sizes))))
        with torch.no_grad():
            outputs = net(job["images"])
            scores = {"error": measure(outputs, job["targets"]),
                      "params": sum(p.numel() for p in net.parameters()),
                      "macs": count_macs(net, torch.rand(1, 3, MACS_PROBE, MACS_PROBE))}
            if critic is not None:  # LSGAN: how far from "real" the critic finds the outputs
                logits = critic(outputs * 2 - 1)
                scores["adversarial"] = float(F.mse_loss(logits, torch.ones_like(logits)))
        out.append(scores)
    return out


# --- the job ---------------------------------------------------------------------------------

def prune(settings: PruneSettings, address: str | None = None, progress: bool = True,
          say=print) -> dict:
    from .trainer import default_storage, train

    if not hub.hub_root():
        raise InputError(f"no model hub to publish to: set ${hub.HUB_ENV} to a folder or "
                         "s3:// prefix")
    settings = settings.model_copy(update={  # workers elsewhere read these: no relative paths
        "style": _absolute(settings.style), "data": [_absolute(d) for d in settings.data]})
    parent = load_parent(settings.style, settings.trust_code)
    vgg = _vgg(settings)
    discriminator = _discriminator(settings, parent)
    run_root = settings.storage or default_storage(hub.hub_root())
    run_uri = storage.join(run_root, settings.name)
    check_shared(address, [*(("--data", uri) for uri in settings.data), ("--storage", run_root),
                           (f"${hub.HUB_ENV}", hub.hub_root())])
    result_uri = storage.join(run_uri, RESULT_FILE)
    done = _finished(result_uri, settings)
    if done is not None:
        return done
    images = content_images(settings.data, settings.eval_images,
                            _multiple_of(settings.image_size, parent.arch.multiple(parent.config)))
    with torch.no_grad():
        targets = parent.unit_range(parent.module())(images)
    connect(address)
    with Lease(storage.join(run_uri, SEARCH_FOLDER)):  # one search of NAME at a time
        state = _search(parent, settings, images, targets, vgg, discriminator, run_uri,
                        progress, say)
    names = [g.name for g in parent.groups]
    keep = evolution.split(state.best["code"], names, [g.size for g in parent.groups])
    child = parent.module(keep)
    child_config = parent.child_config(keep)
    speed = _Speed(parent, images, targets)
    card = {"pruned_from": {"style": parent.text, **parent.identity},
            "code": keep, "search": {**settings.search_identity(),
                                     "generations": state.generation,
                                     "best": {k: v for k, v in state.best.items()
                                              if k != "code"}}}
    if settings.finetune_steps:
        init = _save_pruned(child, parent.arch.name, child_config, run_uri)
        trained = train(
            TrainSettings(recipe="distill", data=settings.data, name=settings.name,
                          workers=settings.workers, steps=settings.finetune_steps,
                          image_size=settings.image_size, storage=settings.storage,
                          seed=settings.seed),
            {"teacher": settings.style, "arch": parent.arch.name, "student_config": child_config,
             "init": init, "trust_code": settings.trust_code,
             "decay_from": FINETUNE_DECAY_FROM},
            address=address, progress=progress, say=say,
            card=lambda module: {**card, **speed.measure(module)})
        published, measured = trained["published"][0], _card_of(trained["published"][0])
    else:
        with Lease(run_uri):  # (train takes the same lease for its own publication)
            done = _finished(result_uri, settings)
            if done is not None:
                return done
            measured = speed.measure(child)
            written = hub.publish_module(child, parent.arch.name, child_config, settings.name,
                                         provenance={**card, **measured})
            published = f"{written['name']}@{written['version']}"
    result = {"name": settings.name, "style": settings.style, "published": published,
              "arch": parent.arch.name, "channels": child_config["channels"],
              "generations": state.table, "finetune_steps": settings.finetune_steps,
              "run": run_uri, **{k: measured[k] for k in _MEASURED}}
    storage.storage_for(result_uri).put_bytes(json.dumps(
        {"settings": settings.model_dump(mode="json"), "result": result}).encode(), result_uri)
    return result


_MEASURED = ("params", "parent_params", "fps", "parent_fps", "speedup", "psnr_db", "error")


def _finished(result_uri: str, settings: PruneSettings) -> dict | None:
    """The summary of this very command's earlier run, if it published."""
    done = storage.storage_for(result_uri).get_bytes(result_uri)
    if done is not None and json.loads(done)["settings"] == settings.model_dump(mode="json"):
        return {**json.loads(done)["result"], "already_published": True}
    return None


def _absolute(uri: str) -> str:
    import os

    if storage.is_s3(uri) or not os.path.exists(uri):
        return uri  # s3://, builtin:N, NAME[@V]
    return os.path.abspath(uri)


def _multiple_of(size: int, multiple: int) -> int:
    return max(multiple, size - size % multiple)


def _discriminator(settings: PruneSettings, parent: Parent) -> tuple | None:
    """(arch, config, state) of ``--discriminator``, for a GAN generator's search."""
    if settings.discriminator is None:
        return None
    from ..models.checkpoints import inspect, load_module

    if parent.arch.name != "resnet_generator":
        raise FieldError("discriminator", f"scores GAN generators; {settings.style} is a "
                                          f"{parent.arch.name}")
    uri = settings.discriminator
    if storage.storage_for(uri).stat(uri) is None:
        raise FieldError("discriminator", f"not found: {uri}")
    local = hub.fetch_checkpoint(uri)
    arch = architectures.get("patchgan_discriminator")
    card = inspect(local, arch=arch.name)
    return arch.name, card.config, load_module(local, arch, card.config).state_dict()


def _vgg(settings: PruneSettings) -> dict | None:
    if settings.error != "perceptual":
        return None
    from .fast_style import vgg_state

    try:
        return vgg_state(settings.vgg_weights)
    except InputError as e:
        raise InputError(f"{e} (or score codes by --error pixel, which needs no VGG)") from None


def _search(parent: Parent, settings: PruneSettings, images, targets, vgg, discriminator,
            run_uri: str, progress: bool, say) -> evolution.SearchState:
    """The genetic search, continued from the run folder's saved state when there is one."""
    import ray

    uri = storage.join(run_uri, SEARCH_FILE)
    store = storage.storage_for(uri)
    sizes = [g.size for g in parent.groups]
    saved = store.get_bytes(uri)
    if saved is not None:
        record = json.loads(saved)
        if record["settings"] != settings.search_identity():
            changed = sorted(k for k, v in settings.search_identity().items()
                             if record["settings"].get(k) != v)
            raise InputError(f"prune run {settings.name!r} at {run_uri} was started with other "
                             f"{', '.join(changed)}; re-run it unchanged or pick a new NAME")
        state = evolution.SearchState(**record["state"])
    else:
        state = evolution.start(sizes, settings.population, settings.seed)
    if state.generation >= settings.generations:
        return state
    if state.generation:
        say(f"resuming the search of {settings.name} at generation {state.generation}")
    job = ray.put({"parent": parent, "images": images, "targets": targets, "error": settings.error,
                   "vgg": vgg, "seed": settings.seed, "discriminator": discriminator})
    task = ray.remote(num_cpus=1)(score_codes)
    tasks = max(1, min(settings.population, int(ray.cluster_resources().get("CPU", 1))))
    whole = parent.module()
    parent_cost = {"params": sum(p.numel() for p in whole.parameters()),
                   "macs": count_macs(whole, torch.rand(1, 3, MACS_PROBE, MACS_PROBE)
                                      * (parent.arch.pixels[1] - parent.arch.pixels[0]))}

    def score(codes):
        shares = [codes[i::tasks] for i in range(tasks)]
        results = ray.get([task.remote(job, share) for share in shares if share])
        ordered: list[dict] = [{}] * len(codes)
        for i, share_result in enumerate(results):
            for j, result in enumerate(share_result):
                ordered[i + j * tasks] = result
        for result in ordered:
            result["fitness"] = (result["error"] + settings.gamma * result[settings.cost]
                                 / parent_cost[settings.cost]
                                 + settings.adversarial_weight * result.get("adversarial", 0.0))
        return ordered

    bar = progress_bar(settings.generations, "gen", f"prune {settings.name}", enabled=progress,
                       initial=state.generation)
    try:
        while state.generation < settings.generations:
            row = evolution.run_generation(state, sizes, score, settings.s1, settings.s2,
                                           settings.mutation)
            store.put_bytes(json.dumps({"settings": settings.search_identity(),
                                        "state": state.to_json()}).encode(), uri)
            bar.update(1)
            if progress:
                bar.write(_table_row(row, parent_cost["params"]), file=sys.stderr)
    finally:
        bar.close()
    return state


def _table_row(row: dict, parent_params: int) -> str:
    return (f"generation {row['generation']:>3}: best fitness {row['fitness']:.4f}, "
            f"error {row['error']:.4f}, {row['params']:,} parameters "
            f"({row['params'] / parent_params:.0%}), {row['macs'] / MACS_PROBE ** 2:,.0f} "
            f"multiply-adds/pixel"
            + (f", discriminator {row['adversarial']:.4f}" if "adversarial" in row else "")
            + f", mean fitness {row['mean_fitness']:.4f}")


def _save_pruned(child: nn.Module, arch: str, config: dict, run_uri: str) -> str:
    """The pruned weights in the run folder, where every fine-tuning worker can read them."""
    from pathlib import Path

    from ..models.checkpoints import save_checkpoint

    target = storage.join(run_uri, PRUNED_FOLDER, hub.WEIGHTS_FILE)
    with tempdirs.scratch("prune") as tmp:
        save_checkpoint(child, arch, config, Path(tmp, "model"))
        store = storage.storage_for(target)
        store.upload(str(Path(tmp, hub.CARD_FILE)), storage.join(run_uri, PRUNED_FOLDER,
                                                                 hub.CARD_FILE))
        store.upload(str(Path(tmp, hub.WEIGHTS_FILE)), target)
    return target


def _card_of(published: str) -> dict:
    name, _, version = published.partition("@")
    uri = storage.join(hub.hub_root(), name, version, hub.CARD_FILE)
    return json.loads(storage.storage_for(uri).get_bytes(uri))["provenance"]


class _Speed:
    """What the card records of a pruned network: frames/s at 640x360 here (one process, torch
    eager, this machine's threads) against the parent's, and PSNR and error against the
    parent's output on the scoring images."""

    def __init__(self, parent: Parent, images: torch.Tensor, targets: torch.Tensor):
        self.parent, self.images, self.targets = parent, images, targets
        self._parent_fps: float | None = None
        self._parent_params = sum(p.numel() for p in parent.module().parameters())

    def measure(self, module: nn.Module) -> dict:
        net = self.parent.unit_range(module.eval())
        with torch.no_grad():
            outputs = net(self.images)
        if self._parent_fps is None:
            self._parent_fps = frames_per_second(self.parent.unit_range(self.parent.module()))
        fps = frames_per_second(net)
        return {"params": sum(p.numel() for p in module.parameters()),
                "parent_params": self._parent_params,
                "fps": round(fps, 2), "parent_fps": round(self._parent_fps, 2),
                "speedup": round(fps / self._parent_fps, 3),
                "psnr_db": round(psnr(outputs, self.targets), 2),
                "error": round(float(F.l1_loss(outputs, self.targets)), 5),
                "speed_measured_on": f"{torch.get_num_threads()} CPU threads, torch eager, "
                                     f"{SPEED_SIZE[1]}x{SPEED_SIZE[0]}"}


def frames_per_second(net: nn.Module, size: tuple[int, int] = SPEED_SIZE, repeats: int = 3
                      ) -> float:
    frame = torch.rand(1, 3, *size)
    with torch.no_grad():
        net(frame)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            net(frame)
            times.append(time.perf_counter() - started)
    return 1 / statistics.median(times)


def psnr(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of [0, 1] images, over all of them."""
    mse = float(F.mse_loss(outputs.clamp(0, 1), targets.clamp(0, 1)))
    return min(PSNR_CAP_DB, 10 * np.log10(1 / max(mse, 1e-12)))
