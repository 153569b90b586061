"""The temporal step's blend in PyTorch (what a GPU actor runs) against the OpenCV one, on the
CPU: the same frames within a grey level, over the budget and under it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from framestyle.pipeline import temporal_torch
from framestyle.pipeline.temporal import TemporalBlender, with_motion
from framestyle.pipeline.temporal import blender_for
from framestyle.pipeline.temporal_torch import TorchTemporalBlender
from test_temporal import flickering, panning


def both(stylized: list[np.ndarray], motions: list, strength: float = 0.7):
    cpu, device = TemporalBlender(strength), TorchTemporalBlender(strength, "cpu")
    return ([cpu(s, m) for s, m in zip(stylized, motions)],
            [device(s, m) for s, m in zip(stylized, motions)])


@pytest.mark.parametrize("amplitude", [20, 90])  # under the deviation budget, and over it
def test_the_torch_blend_gives_the_opencv_blends_frames(amplitude, monkeypatch):
    frames = panning(frames=12)
    stylized = flickering(frames, amplitude)
    motions = [m for _, m in with_motion(frames)]
    shares = []
    share = TorchTemporalBlender.detail_share
    monkeypatch.setattr(TorchTemporalBlender, "detail_share",
                        lambda self, *a: shares.append(share(self, *a)) or shares[-1])
    expected, got = both(stylized, motions)
    for e, g in zip(expected, got):
        assert g.shape == e.shape and g.dtype == np.uint8
        difference = np.abs(e.astype(int) - g)
        assert difference.max() <= 1 and difference.mean() < 0.01
    # blended after the first frame, not passed through
    assert all(np.abs(g.astype(int) - s).mean() > 1 for g, s in zip(got[1:], stylized[1:]))
    if amplitude == 90:  # over the budget: the detail share was found, and used
        assert shares and any(0 < s < 1 for s in shares)
    else:
        assert not shares


def test_flow_computed_small_is_scaled_up_on_the_device_as_opencv_scales_it():
    """A GPU actor takes the motion at the size its flow was computed at (the CPU scaled it up
    to 1080p in 13 of the 38 ms a frame's motion cost) and scales it up on its device: the
    same frames as the OpenCV blend given motion scaled up on the CPU."""
    frames = panning(frames=10, shift=3)
    stylized = flickering(frames, 30)
    large = [m for _, m in with_motion(frames, max_flow_side=48)]
    small = [m for _, m in with_motion(frames, max_flow_side=48, full_size=False)]
    assert small[1].flow.shape == (48, 64, 2) and large[1].flow.shape == (96, 128, 2)
    cpu, device = TemporalBlender(0.7), TorchTemporalBlender(0.7, "cpu")
    for s, big, little in zip(stylized, large, small):
        expected, got = cpu(s, big), device(s, little)
        difference = np.abs(expected.astype(int) - got)
        assert difference.max() <= 1 and difference.mean() < 0.01


def test_frames_smaller_than_the_blurs_reach_blend_too():
    """(Strength 0, the first frame and the flicker cut: test_temporal.py, for both blends.)
    The quarter-size energy map of a 12x16 frame is 3x4: the edge is repeated where OpenCV
    reflects it again and again, a few grey levels apart at most."""
    tiny = [np.ascontiguousarray(f[:12, :16]) for f in panning(frames=4)]
    tiny_styled = flickering(tiny, 20)
    tiny_motions = [m for _, m in with_motion(tiny)]
    expected, got = both(tiny_styled, tiny_motions)
    for e, g in zip(expected, got):
        assert np.abs(e.astype(int) - g).max() <= 4 and np.abs(e.astype(int) - g).mean() < 1


def a_gpu_with(monkeypatch, free: int) -> list:
    """No GPU here: its free memory and its blend (run on the CPU) are stood in for; returns
    the devices GPU blends are made for."""
    made = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 2 * free))
    monkeypatch.setattr(temporal_torch, "TorchTemporalBlender", lambda strength, device: (
        made.append(device), TorchTemporalBlender(strength))[1])
    return made


def test_gpu_actors_blend_on_their_gpu_unless_the_frame_does_not_fit(monkeypatch, caplog):
    assert isinstance(blender_for(0.7, torch.device("cpu")), TemporalBlender)
    made = a_gpu_with(monkeypatch, free=8 * 2**30)
    uhd = 3840 * 2160
    assert isinstance(blender_for(0.5, torch.device("cuda"), uhd), TorchTemporalBlender)
    assert made == [torch.device("cuda")]
    made = a_gpu_with(monkeypatch, free=2**30)  # 1 GiB free: a 4K frame's blend needs 1.6 GiB
    assert isinstance(blender_for(0.5, torch.device("cuda"), uhd), TemporalBlender)
    assert made == [] and "blend on the CPU" in caplog.text
    assert isinstance(blender_for(0.5, torch.device("cuda"), 1920 * 1080), TorchTemporalBlender)


@pytest.mark.parametrize("on", ["cpu", "cuda"])
def test_a_gpu_actor_blends_on_its_gpu_with_the_flow_as_computed(clips, tmp_path, monkeypatch,
                                                                 on):
    """The chunk worker of an actor whose model is on a GPU blends there and hands the blend
    the flow at the size it was computed at; a CPU actor blends with OpenCV at full size.
    (No GPU here: the actor's stylizer claims one and returns its frames, and its blend runs on
    the CPU, with flow computed at 16 px so that it must be scaled up.)"""
    from framestyle.pipeline import chunk_worker
    from framestyle.pipeline.chunk_worker import ChunkWorker
    from framestyle.pipeline.gpu_codecs import NO_GPU_CODECS
    from test_gpu_codecs import eight_frame_task

    class Stylizer:
        device = torch.device(on)

        def __call__(self, frames):
            return flickering(frames, 20)

    sizes, motion = [], chunk_worker.with_motion
    made = a_gpu_with(monkeypatch, free=8 * 2**30)
    monkeypatch.setattr(chunk_worker, "node_codecs", lambda: NO_GPU_CODECS)
    monkeypatch.setattr(ChunkWorker, "stylizer_for", lambda self, task: Stylizer())
    monkeypatch.setattr(chunk_worker, "with_motion",
                        lambda frames, full_size, workers: sizes.append((full_size, workers))
                        or motion(frames, 16, full_size, workers))
    task = eight_frame_task(str(clips["bunny"]), tmp_path, temporal=0.7)
    *written, record = ChunkWorker(threads=2).process(task)
    assert sum(written) == record.frames == 8
    assert made == ([torch.device("cuda")] if on == "cuda" else [])
    assert sizes == [(on == "cpu", 2)]  # the flow on as many threads as the actor has CPUs


def test_an_animations_frames_blend_on_the_models_gpu_too(monkeypatch):
    """A GIF's frames on a GPU stylizer (the images job) blend where a video's chunks do."""
    from framestyle.pipeline.temporal import stylize_frames

    class Stylizer:
        device = torch.device("cuda")

        def __call__(self, frames):
            return flickering(frames, 20)

    made = a_gpu_with(monkeypatch, free=8 * 2**30)
    frames = panning(frames=6)
    out = stylize_frames(Stylizer(), frames, 0.7)
    assert made == [torch.device("cuda")]
    assert len(out) == 6 and np.abs(out[5].astype(int) - flickering(frames, 20)[5]).mean() > 1
