"""`framestyle eval flicker` on a Ray cluster: frame pairs scored in parallel, or a sample of them.

The metric's flow (TV-L1, ``pipeline.flicker``) costs seconds a frame pair, so one process takes
most of an hour over a one-minute clip. Pairs are independent: each Ray task decodes one stretch
of INPUT and OUTPUT (and of the reference, or stylizes INPUT with the style), scores its pairs and
returns sums; the driver adds them up. ``sample`` N scores every Nth pair (and compares every Nth
frame with the reference), evenly spread over the clip, so the value follows the whole clip, not
its start; ``benchmarks.flicker_metric`` measures how close it stays to the full value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core import storage
from ..models.hub import ModelRef
from .cluster import check_shared, connect
from .probe import VideoInfo
from .progress import progress_bar

TASKS_PER_CPU = 3  # a few tasks per CPU: even load and a progress bar that moves


@dataclass(frozen=True)
class FlickerInputs:
    """What one measurement reads: URIs (tasks fetch them on their own node) with what the
    driver's probe found (a probe reads every packet: tasks do not repeat it), and the size
    output frames are compared at."""

    input: str
    input_info: VideoInfo
    output: str
    output_info: VideoInfo
    size: tuple[int, int]
    reference: str | None = None  # a per-frame stylization of INPUT, or
    reference_info: VideoInfo | None = None
    style: ModelRef | None = None  # the style to make one with

    @property
    def frames(self) -> int:
        return self.input_info.frames


@dataclass
class FlickerSums:
    """One stretch's scores, or their total."""

    pair_errors: dict[int, float] = field(default_factory=dict)  # t of pair (t-1, t) -> E(t)
    cuts: list[int] = field(default_factory=list)
    difference: float = 0.0  # sum over compared frames of the mean absolute difference
    sharpness: float = 0.0  # sum of the output's sharpness over compared frames
    reference_sharpness: float = 0.0
    compared: int = 0  # frames compared with the reference

    def add(self, other: FlickerSums) -> None:
        self.pair_errors.update(other.pair_errors)
        self.cuts += other.cuts
        self.difference += other.difference
        self.sharpness += other.sharpness
        self.reference_sharpness += other.reference_sharpness
        self.compared += other.compared

    def summary(self) -> dict:
        errors = list(self.pair_errors.values())
        compared = self.compared or None
        return {
            "pairs": len(errors), "cuts_skipped": len(self.cuts),
            "warping_error": round(sum(errors) / len(errors), 6) if errors else 0.0,
            "deviation": round(self.difference / compared, 5) if compared else None,
            "sharpness_kept": (round(self.sharpness / self.reference_sharpness, 4)
                               if compared and self.reference_sharpness else None),
        }


def sampled_pairs(frames: int, sample: int) -> list[int]:
    """t of the pairs (t-1, t) scored: every ``sample``-th, starting with the first."""
    return list(range(1, frames, sample))


def measure(inputs: FlickerInputs, sample: int = 1, address: str | None = None,
            progress: bool = True) -> dict:
    """Score ``inputs`` over the cluster; the summary of ``FlickerSums`` plus what was run."""
    import ray

    # the scoring tasks read these on whichever node they run
    check_shared(address, [("IN", inputs.input), ("OUT", inputs.output),
                           ("--reference", inputs.reference),
                           ("--style", inputs.style.source if inputs.style else None)])
    connect(address)
    pairs = sampled_pairs(inputs.frames, sample)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
    size = max(1, math.ceil(len(pairs) / (TASKS_PER_CPU * cpus)))
    stretches = [pairs[i:i + size] for i in range(0, len(pairs), size)]
    remote = ray.remote(num_cpus=1)(score_stretch)
    pending = {remote.remote(inputs, stretch): len(stretch) for stretch in stretches}
    total = FlickerSums()
    with progress_bar(len(pairs), "pair", "flicker", enabled=progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            total.add(ray.get(done[0]))
            bar.update(pending.pop(done[0]))
    summary = total.summary()
    return {**summary, "warping_error_margin": sampling_margin(
        list(total.pair_errors.values()), inputs.frames - 1 - len(total.cuts) * sample),
        "sample": sample}


def sampling_margin(errors: list[float], population: int) -> float | None:
    """Half the width of the 95% confidence interval of the mean of ``errors``, a sample of
    ``population`` pair errors (the pairs a full run would score); None for a full run, whose
    mean is exact, or a sample too small to tell.

    How far a sampled mean may be from the full run's depends on how much the pairs' errors
    vary, which differs from clip to clip: no N keeps every clip within a fixed 5%
    (docs/temporal.md), so the command reports how sure its number is instead. Every Nth pair is
    treated as a simple random sample (normal approximation, finite-population correction)."""
    n = len(errors)
    if n < 2 or n >= population:
        return None
    mean = sum(errors) / n
    variance = sum((e - mean) ** 2 for e in errors) / (n - 1)
    return round(1.96 * math.sqrt(variance / n * (1 - n / population)), 6)


def score_stretch(inputs: FlickerInputs, pairs: list[int]) -> FlickerSums:
    """Score the pairs (t-1, t) for t in ``pairs`` (ascending), decoding one stretch of each
    video; compare frame t of each pair (and frame 0 with the first pair) with the reference."""
    import cv2

    from .decode import iter_frames
    from .flicker import difference, pair_error, pair_motion, sharpness

    cv2.setNumThreads(1)  # one CPU per task: tasks, not threads, share out the cores
    first, last = pairs[0] - 1, pairs[-1]
    wanted = set(pairs)
    compared = wanted | ({0} if first == 0 else set())

    def frames(uri: str, info: VideoInfo):
        return iter_frames(storage.fetch(uri), info, first, last - first + 1, inputs.size,
                           name=uri)

    references = frames(inputs.reference, inputs.reference_info) if inputs.reference else None
    stylizer = None
    if inputs.style is not None:
        from .stylize import Stylizer

        stylizer = Stylizer(inputs.style)
    sums, previous = FlickerSums(), None
    for t, (source, output) in enumerate(zip(frames(inputs.input, inputs.input_info),
                                             frames(inputs.output, inputs.output_info)),
                                         start=first):
        reference = next(references) if references is not None else None
        if t in wanted and previous is not None:
            motion = pair_motion(previous[0], source)
            if motion.cut:
                sums.cuts.append(t)
            else:
                sums.pair_errors[t] = pair_error(previous[1], output, motion)
        if t in compared and (references is not None or stylizer is not None):
            reference = reference if reference is not None else stylizer([source])[0]
            sums.difference += difference(output, reference)
            sums.sharpness += sharpness(output)
            sums.reference_sharpness += sharpness(reference)
            sums.compared += 1
        previous = (source, output)
    return sums
