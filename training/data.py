"""Training images: the images job's sources and decoding, streamed through Ray Data.

On the driver, ``--data`` (and ``--data-b``) are resolved exactly as ``framestyle images``
resolves its sources (folders, ``s3://`` prefixes, globs, ``.tar``/``.zip`` archives) and
``preflight`` checks that something readable is there; the dataset's ``rows`` read and decode in
Ray tasks and augment on the fly (scale, random crop, random flip: a fresh crop every pass). Every source yields exactly one row,
so the split between workers stays even: an unreadable file becomes a row marked invalid, which
the worker's ``Batches`` replaces and counts, never fatal.

On the workers, ``Batches`` turns a worker's shards into fixed-size float batches on its device
and keeps the data position (epoch, batches into it) that checkpoints carry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from PIL import Image

from ..core.errors import FieldError, InputError
from ..pipeline.image_decode import ImageError, decode_image
from ..pipeline.image_source import SourceUnit, read_guarded

MIN_PASS_STEPS = 25
PREFLIGHT_ITEMS = 32  # images the driver tries before it lets the workers find out
PAIR_TOLERANCE = 0.02  # an A|B image is twice as wide as high, within 2%


@dataclass(frozen=True)
class Augment:
    """How each image becomes a training crop."""

    size: int
    jitter: float = 1.0  # scale to size * jitter first (pix2pix/CycleGAN: 286 for 256)
    paired: bool = False  # an A|B image: both halves cropped and flipped alike

    @property
    def load_size(self) -> int:
        return max(self.size, round(self.size * self.jitter))

    def __call__(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.paired:
            h, w = rgb.shape[:2]
            halves = [rgb[:, :w // 2], rgb[:, w // 2:w // 2 * 2]]
            # junyanz's resize_and_crop: each half to a load_size square, then one crop
            image = np.concatenate([_resize(x, self.load_size, self.load_size) for x in halves],
                                   axis=2)
        else:
            h, w = rgb.shape[:2]
            scale = self.load_size / min(h, w)
            image = _resize(rgb, max(self.load_size, round(w * scale)),
                            max(self.load_size, round(h * scale)))
        h, w = image.shape[:2]
        top, left = rng.integers(0, h - self.size + 1), rng.integers(0, w - self.size + 1)
        crop = image[top:top + self.size, left:left + self.size]
        return np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)


def _resize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BICUBIC))


def not_a_pair(rgb: np.ndarray) -> str:
    """Why an image is not an A|B pair side by side, or ""."""
    h, w = rgb.shape[:2]
    if abs(w - 2 * h) > PAIR_TOLERANCE * w:
        return (f"{w}x{h} is not an A|B pair side by side (width = 2 x height): pix2pix needs "
                "paired images")
    return ""


def decoded(data: bytes, augment: Augment) -> np.ndarray:
    """Upright RGB, decoded no larger than the crops need (JPEG decodes at reduced scale)."""
    rgb = decode_image(data, max_side=augment.load_size * (8 if augment.paired else 4)).rgb
    problem = not_a_pair(rgb) if augment.paired else ""
    if problem:
        raise ImageError(problem)
    return rgb


def rows(unit_row: dict, augment: Augment) -> Iterator[dict]:
    """One row per image of a source unit (Ray Data ``flat_map``): the crop, or an invalid row
    saying why not."""
    rng = np.random.default_rng()
    channels = 6 if augment.paired else 3
    for item in read_guarded(SourceUnit(**unit_row)):
        reason = item.failure
        if not reason:
            try:
                image = augment(decoded(item.data, augment), rng)
            except ImageError as e:
                reason = str(e)
        if reason:
            yield {"image": np.zeros((augment.size, augment.size, channels), np.uint8),
                   "valid": False, "source": f"{item.source}: {reason}"}
        else:
            yield {"image": image, "valid": True, "source": item.source}


def pass_repeats(units, rows_per_step: int, rows_per_unit: int = 1) -> int:
    """How many times a pass lists a small set of plain files: each pass over the data costs
    Ray Data a few seconds to start, so a pass lasts at least MIN_PASS_STEPS steps (every
    repeat is cropped and flipped anew). Archives are never repeated (their size is unknown)."""
    if any(u.kind != "file" for u in units):
        return 1
    return max(1, -(-MIN_PASS_STEPS * rows_per_step // (len(units) * rows_per_unit)))


def preflight(units: list[SourceUnit], augment: Augment, flag: str) -> None:
    """Fail now, not on a worker after Ray Train has started and retried, when the first
    images of a source are all unreadable (or, for pix2pix, not pairs)."""
    problems = []
    for unit in units:
        for item in read_guarded(unit):
            if not item.failure:
                try:
                    decoded(item.data, augment)
                    return
                except ImageError as e:
                    problems.append(f"{item.source}: {e}")
            else:
                problems.append(f"{item.source}: {item.failure}")
            if len(problems) >= PREFLIGHT_ITEMS:
                return  # let the workers count the rest
    unpaired = [p for p in problems if "A|B pair" in p]
    if unpaired:
        raise FieldError("data", unpaired[0])
    raise InputError(f"{flag}: no readable image among {len(problems)} file(s)"
                     + (f"; first: {problems[0]}" if problems else ""))


@dataclass
class Position:
    """Where a worker is in its data: per dataset, the epoch and the batches read into it."""

    epochs: dict[str, int] = field(default_factory=dict)
    batches: dict[str, int] = field(default_factory=dict)


def _tensor(column: np.ndarray, device, pixels: bool):
    """NHWC -> NCHW floats on ``device``; uint8 pixels scaled to [0, 1]."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(column)).to(device)
    if tensor.dim() == 4:
        tensor = tensor.permute(0, 3, 1, 2)
    tensor = tensor.float()
    return (tensor.div_(255) if pixels else tensor).contiguous()


class Batches:
    """Endless fixed-size batches from a worker's shards, as float [0, 1] NCHW tensors (and any
    other columns the rows have, as float tensors under their own names).

    Invalid rows (unreadable images) are replaced by valid rows of the same batch and their
    sources remembered in ``skipped``; a batch with no valid row at all comes back as None (the
    trainer agrees with the other workers to skip the step). On resume, ``position`` says how
    many batches of the current epoch were already trained on, and those are read past.
    """

    def __init__(self, shards: dict, batch_size: int, device, paired: bool,
                 position: Position | None = None):
        self.shards, self.batch_size, self.device, self.paired = shards, batch_size, device, paired
        self.position = position or Position()
        self.skipped: set[str] = set()
        self._iters = {name: self._epochs(name) for name in shards}

    def __next__(self) -> dict | None:
        out = {}
        for name, it in self._iters.items():
            columns = next(it)
            if columns is None:
                return None
            images = columns.pop("image")
            if self.paired:
                out["a"], out["b"] = images[:, :3], images[:, 3:]
            else:
                out[name] = images
            out.update(columns)  # a recipe's own columns (a pair's flow and mask)
        return out

    def _epochs(self, name: str):
        pos = self.position
        pos.epochs.setdefault(name, 0)
        resume_at = pos.batches.get(name, 0)
        while True:
            pos.batches[name] = 0
            seen = 0
            for batch in self.shards[name].iter_batches(batch_size=self.batch_size,
                                                        batch_format="numpy", drop_last=False,
                                                        prefetch_batches=1):
                seen += 1
                pos.batches[name] += 1
                if resume_at:  # trained on before the checkpoint this run resumed from
                    resume_at -= 1
                    continue
                valid = batch["valid"].astype(bool)
                self.skipped.update(str(s) for s, ok in zip(batch["source"], valid) if not ok)
                if not valid.any():
                    yield None
                    continue
                rows = np.flatnonzero(valid)
                rows = rows[np.arange(len(valid)) % len(rows)]  # refill to batch size
                yield {key: _tensor(column[rows], self.device, key == "image")
                       for key, column in batch.items() if key not in ("valid", "source")}
            if not seen:
                raise InputError("too few images for this many workers: each worker's share of "
                                 "the data is empty (use fewer --workers or more images)")
            resume_at = 0
            pos.epochs[name] += 1
