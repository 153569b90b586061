"""The temporal step and the flicker metric on synthetic motion with known answers."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from framestyle.pipeline import temporal
from framestyle.pipeline.flicker import deviation, difference, sharpness, warping_error
from framestyle.pipeline.temporal import (TemporalBlender, occluded, to_gray, warp,
                                          with_motion)
from framestyle.pipeline.temporal_torch import TorchTemporalBlender


def textured(h=96, w=128, seed=0) -> np.ndarray:
    """A smooth random texture that optical flow can lock onto."""
    import cv2

    noise = np.random.default_rng(seed).random((h // 4, w // 4, 3)).astype(np.float32)
    return (cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1) * 255).astype(np.uint8)


def panning(frames=8, shift=2, seed=0) -> list[np.ndarray]:
    """A camera panning right by ``shift`` pixels a frame over a wide texture."""
    wide = textured(96, 128 + shift * frames, seed)
    return [np.ascontiguousarray(wide[:, i * shift:i * shift + 128]) for i in range(frames)]


def test_warp_follows_the_flow():
    image = textured()
    flow = np.zeros(image.shape[:2] + (2,), np.float32)
    flow[..., 0] = 3  # every pixel of the target came from 3 pixels to the right
    warped = warp(image, flow)
    assert np.array_equal(warped[:, :-3], image[:, 3:])


def test_occlusion_rule_flags_inconsistent_and_boundary_pixels():
    shape = (32, 32, 2)
    backward = np.full(shape, -2, np.float32)
    forward = np.full(shape, 2, np.float32)
    assert not occluded(forward, backward).any()  # a clean round trip
    assert occluded(forward * 0, backward).all()  # forward flow says nothing moved
    backward[:, 16:] = 5  # two motions meet: a motion boundary
    forward[:, 16:] = -5
    mask = occluded(forward, backward)
    assert mask[:, 14:17].any() and not mask[:, :10].any()


def test_occlusion_rule_gives_the_same_mask_with_arrays_kept_from_an_earlier_pair():
    def pair(split: int, wrong: slice) -> tuple[np.ndarray, np.ndarray]:
        forward = np.full((40, 56, 2), 2, np.float32)
        forward[:, split:] = (-3, 1)  # two motions: a boundary at ``split``
        backward = -forward
        backward[wrong] += 4  # a block where the round trip fails
        return forward, backward

    pairs = [pair(20, np.s_[5:15, 30:]), pair(40, np.s_[20:35, 2:12])]
    scratch = temporal.Scratch()
    for forward, backward in pairs + pairs[:1]:
        expected = occluded(forward, backward)
        assert 0.05 < expected.mean() < 0.5
        # every intermediate is written over, none read before it is: no trace of the last pair
        assert np.array_equal(occluded(forward, backward, scratch), expected)


def test_motion_recovers_a_pan_and_distrusts_a_shot_change():
    frames = panning() + [textured(seed=9)]
    motions = [m for _, m in with_motion(frames)]
    assert motions[0] is None
    pan = motions[3]
    centre = pan.flow[20:-20, 20:-20]
    assert np.median(centre[..., 0]) == pytest.approx(2, abs=0.3)  # t's x was at x+2 in t-1
    assert pan.visible.mean() > 0.8
    assert motions[-1].visible.mean() < 0.3  # the cut


def flickering(frames: list[np.ndarray], amplitude: int, seed=1) -> list[np.ndarray]:
    """A "stylization" whose texture changes every frame: uniform noise of +-``amplitude``."""
    rng = np.random.default_rng(seed)
    return [np.clip(f.astype(int) + rng.integers(-amplitude, amplitude, f.shape), 0, 255)
            .astype(np.uint8) for f in frames]


@pytest.mark.parametrize("blender", [TemporalBlender, TorchTemporalBlender])  # CPU, GPU actors
def test_blender_follows_motion_and_strength_zero_is_per_frame(blender):
    frames = panning(frames=10)
    flicker = flickering(frames, 20)
    motions = [m for _, m in with_motion(frames)]
    off = blender(0.0)
    assert all(np.array_equal(off(s, m), s) for s, m in zip(flicker, motions))
    on = blender(0.7)
    assert np.array_equal(on(flicker[0], None), flicker[0])  # the first frame: nothing before
    steady = [on(s, m) for s, m in zip(flicker[1:], motions[1:])]
    before = warping_error(frames[1:], flicker[1:]).warping_error
    after = warping_error(frames[1:], steady).warping_error
    assert after < 0.5 * before
    assert deviation(steady, flicker[1:]) < 0.08
    with pytest.raises(ValueError):
        blender(1.0)


def test_a_style_that_repaints_every_frame_stays_within_the_deviation_budget(monkeypatch):
    """Where the texture changes wholesale from frame to frame, carrying it along the flow would
    move every frame far from what the network painted: the correction is shrunk to the
    budget, and the step still steadies the video."""
    frames = panning(frames=10)
    wild = flickering(frames, 90)  # mean absolute change ~0.18 of the range, frame to frame
    motions = [m for _, m in with_motion(frames)]
    blend = TemporalBlender(0.7)
    steady = [blend(s, m) for s, m in zip(wild, motions)]
    drift = [difference(o, s) for o, s in zip(steady, wild)]
    assert max(drift) <= temporal.DEVIATION_BUDGET + 0.002, drift
    assert min(drift[1:]) > 0.7 * temporal.DEVIATION_BUDGET, drift  # the budget is used
    before, after = (warping_error(frames, v).warping_error for v in (wild, steady))
    assert after < 0.8 * before
    monkeypatch.setattr(temporal, "DEVIATION_BUDGET", 1.0)  # without it, frames drift far more
    blend = TemporalBlender(0.7)
    unlimited = [blend(s, m) for s, m in zip(wild, motions)]
    assert deviation(unlimited, wild) > 2 * deviation(steady, wild)


@pytest.mark.parametrize("size", [(90, 120), (360, 640)])  # the threshold exact, and sampled
def test_an_over_budget_correction_is_soft_thresholded_to_the_budget(size):
    """Every value moves towards 0 by one amount, small ones become 0, the mean lands on the
    budget, and the result is closer to the correction asked for than scaling it down is."""
    rng = np.random.default_rng(3)
    asked = (rng.laplace(0, 20, (*size, 3)) * (rng.random((*size, 1)) < 0.5)).astype(np.float32)
    assert np.abs(asked).mean() / 255 > 0.03
    shrunk = asked.copy()
    temporal.shrink_to_budget(shrunk, 0.02, temporal.Scratch())
    assert np.abs(shrunk).mean() / 255 == pytest.approx(0.02, rel=0.03)
    moved = np.abs(asked) - np.abs(shrunk)
    kept = shrunk != 0
    assert 0.15 < kept.mean() < 0.5  # a share of the values is left to the fresh frame
    assert np.all(np.sign(shrunk[kept]) == np.sign(asked[kept]))
    assert np.ptp(moved[kept]) < 1e-3 and np.all(moved[~kept] <= moved[kept].min() + 1e-3)
    scaled = asked * (0.02 * 255 / np.abs(asked).mean())
    assert np.linalg.norm(shrunk - asked) < 0.9 * np.linalg.norm(scaled - asked)


def test_over_budget_the_step_spends_its_budget_on_carrying_the_previous_state_whole():
    """Over the budget, the correction is the one of that size nearest carrying the warped
    previous state over entirely, not nearest strength times it: for the same deviation it
    leaves the frame closer to the previous one (less flicker). The output is held to the budget
    itself, not to the sampled threshold's approximation of it."""
    rng = np.random.default_rng(5)
    previous = rng.integers(60, 196, (360, 640, 3))
    # repainted texture: most pixels change a little, a few a lot (0.06 of the range on average)
    fresh = np.clip(previous + rng.laplace(0, 15, previous.shape), 0, 255).astype(np.uint8)
    previous = previous.astype(np.uint8)
    still = temporal.Motion(np.zeros((360, 640, 2), np.float32), np.ones((360, 640), np.float32))
    strength = 0.5
    budget = temporal.DEVIATION_BUDGET * strength / temporal.DEFAULT_STRENGTH
    blend = TemporalBlender(strength)
    blend(previous, None)
    output = blend(fresh, still)
    whole = previous.astype(np.float32) - fresh
    expected, partial = whole.copy(), strength * whole
    for correction in (expected, partial):
        temporal.shrink_to_budget(correction, budget, temporal.Scratch())
    carried = blend._state - fresh  # state_t = S_t + c_t
    assert np.allclose(carried, expected, atol=1e-3)
    assert np.linalg.norm(carried - whole) < 0.9 * np.linalg.norm(partial - whole)
    assert budget * 0.95 < difference(output, fresh) <= budget + 0.5 / 255  # (+ rounding)


def test_over_budget_the_detail_is_restored_only_as_far_as_the_sharpness_share():
    """A style that repaints its strokes every frame (over the budget): restoring the carried
    state's detail to the fresh frame's contrast re-amplified the repainted strokes, to more
    sharpness than the network painted, and the budget went on that instead of on steadying.
    The detail is now restored until the frame keeps OVER_BUDGET_SHARPNESS of the fresh frame's
    sharpness: less flicker for the same deviation."""
    import cv2

    rng = np.random.default_rng(3)
    h, w = 180, 320
    scene = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    scene = (scene - scene.mean()) / scene.std() * 30 + 128

    def strokes():
        noise = cv2.GaussianBlur(rng.standard_normal((h, w, 3)).astype(np.float32), (0, 0), 0.8)
        return noise / noise.std() * 25

    frames = [np.clip(scene + strokes(), 0, 255).astype(np.uint8) for _ in range(12)]
    still = temporal.Motion(np.zeros((h, w, 2), np.float32), np.ones((h, w), np.float32))

    def run():
        blend = TemporalBlender(0.7)
        outputs = [blend(f, still if i else None) for i, f in enumerate(frames)]
        kept = sum(sharpness(o) for o in outputs[1:]) / sum(sharpness(f) for f in frames[1:])
        flicker = np.mean([difference(a, b) for a, b in zip(outputs[1:], outputs[2:])])
        return kept, flicker, np.mean([difference(o, f) for o, f in zip(outputs, frames)])

    kept, flicker, drift = run()
    with mock.patch.object(temporal, "OVER_BUDGET_SHARPNESS", 10.0):  # all the detail
        kept_all, flicker_all, drift_all = run()
    assert temporal.OVER_BUDGET_SHARPNESS - 0.02 < kept < temporal.OVER_BUDGET_SHARPNESS + 0.02
    assert kept_all > 1.05  # what full restoration did: sharper than the network's own frames
    assert flicker < 0.9 * flicker_all
    assert drift == pytest.approx(drift_all, rel=0.05)


def test_detail_share_finds_the_fraction_of_the_detail_that_gives_the_sharpness_asked():
    import cv2

    rng = np.random.default_rng(4)
    fresh = cv2.GaussianBlur(rng.random((120, 160, 3)).astype(np.float32) * 255, (0, 0), 1.0)
    state = cv2.GaussianBlur(fresh, (0, 0), 1.5)  # a softer copy
    restored = fresh + (fresh - state)  # sharper than fresh
    scratch = temporal.Scratch()

    def kept(k):
        return sharpness(np.clip(state + k * (restored - state), 0, 255).astype(np.uint8)) \
            / sharpness(fresh.astype(np.uint8))

    k = temporal.detail_share(state, restored, fresh, 0.9, scratch)
    assert 0 < k < 1 and kept(k) == pytest.approx(0.9, abs=0.02)
    assert temporal.detail_share(state, restored, fresh, 5.0, scratch) == 1.0  # never enough
    assert temporal.detail_share(state, restored, fresh, 0.01, scratch) == 0.0  # state suffices


def translated_texture(frames: int, step=(0.37, 0.23), h=96, w=128) -> list[np.ndarray]:
    """Fine random texture (detail ~2 px) moving by a fraction of a pixel a frame, translated
    exactly (a phase shift of its spectrum), so that any loss of detail is the step's."""
    import cv2

    rng = np.random.default_rng(7)
    base = cv2.GaussianBlur(rng.random((2 * h, 2 * w, 3)).astype(np.float32), (0, 0), 1.0)
    base = (base - base.mean()) / base.std() * 40 + 128
    spectrum = np.fft.fft2(base, axes=(0, 1))
    ky, kx = np.fft.fftfreq(2 * h)[:, None, None], np.fft.fftfreq(2 * w)[None, :, None]
    out = []
    for t in range(frames):
        shifted = np.fft.ifft2(spectrum * np.exp(-2j * np.pi * t * (ky * step[1] + kx * step[0])),
                               axes=(0, 1)).real
        out.append(shifted[h // 2:h // 2 + h, w // 2:w // 2 + w].clip(0, 255).astype(np.uint8))
    return out


def detail_energy(frame: np.ndarray) -> float:
    """Mean square of what a 1.5 px Gaussian removes, away from the borders."""
    import cv2

    image = frame.astype(np.float32)
    detail = (image - cv2.GaussianBlur(image, (0, 0), 1.5))[8:-8, 8:-8]
    return float((detail ** 2).mean())


def test_a_moving_texture_keeps_its_detail_through_fifty_frames_of_the_step():
    """Bilinear warping and blending every frame used to soften brush strokes step by step; the
    step must carry a texture that moves with the scene without losing its fine detail."""
    frames = translated_texture(51)
    motions = [m for _, m in with_motion(frames)]
    blend = TemporalBlender(0.7)
    steady = [blend(f, m) for f, m in zip(frames, motions)]
    for t in (10, 25, 50):
        assert detail_energy(steady[t]) == pytest.approx(detail_energy(frames[t]), rel=0.1)
    # the texture stays where the scene put it: off by a fifth of its own contrast (mean
    # absolute difference from grey ~0.12) at most, from the flow's small errors
    assert deviation(steady, frames) < 0.025
    plain = frames[0].astype(np.float32)  # the old warp-and-blend, for scale: it loses ~45%
    for f, m in zip(frames[1:], motions[1:]):
        plain = f + 0.7 * m.visible[..., None] * (warp(plain, m.flow) - f)
    assert detail_energy(plain) < 0.7 * detail_energy(frames[-1])


def test_metric_is_zero_for_content_that_moves_with_the_input():
    frames = panning(seed=3)
    styled = [255 - f for f in frames]  # a "style" that moves exactly with the scene
    meter = warping_error(frames, styled)
    assert meter.warping_error < 3e-3 and len(meter.pair_errors) == len(frames) - 1
    frozen = [styled[0]] * len(frames)  # steady on screen but not following the motion
    assert warping_error(frames, frozen).warping_error > 10 * meter.warping_error


def test_metric_leaves_out_shot_changes():
    frames = panning(seed=4) + panning(seed=5)
    meter = warping_error(frames, frames)
    assert meter.cuts == [8] and len(meter.pair_errors) == len(frames) - 2


def layered(h: int, w: int, seed: int) -> np.ndarray:
    """Texture at several scales, like a real surface seen from afar and close up."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((h, w, 3), np.float32)
    for cell in (32, 16, 8, 4):
        noise = rng.random((h // cell + 1, w // cell + 1, 3)).astype(np.float32)
        out += cv2.resize(noise, (w + cell, h + cell), interpolation=cv2.INTER_CUBIC)[:h, :w] / 4
    return (out.clip(0, 1) * 255).astype(np.uint8)


def passing_object(speed: int, frames=6) -> list[np.ndarray]:
    """A 96x64 object crossing a still 256x144 background at ``speed`` px a frame."""
    background, thing = layered(144, 256, 1), layered(64, 96, 2)
    out = []
    for i in range(frames):
        frame = background.copy()
        frame[40:104, 20 + i * speed:116 + i * speed] = thing
        out.append(frame)
    return out


@pytest.mark.parametrize("speed", [4, 16])
def test_metric_follows_fast_motion(speed):
    """The van in ``bikes`` moves tens of px a frame. A metric flow that misses such motion
    charges content that moves with the scene as flicker, and lets a frozen output pass."""
    frames = passing_object(speed)
    styled = [255 - f for f in frames]
    meter = warping_error(frames, styled)
    assert meter.cuts == [] and meter.warping_error < 1e-3
    frozen = [styled[0]] * len(frames)
    assert warping_error(frames, frozen).warping_error > 10 * meter.warping_error


def test_deviation_is_mean_absolute_difference_in_unit_range():
    a = [np.zeros((4, 4, 3), np.uint8)] * 2
    b = [np.full((4, 4, 3), 51, np.uint8)] * 2
    assert deviation(a, b) == pytest.approx(0.2)
    assert to_gray(b[0]).shape == (4, 4)


def test_motion_on_several_threads_is_the_same_motion_in_the_same_order():
    """An actor with several CPUs computes several pairs' flow at once: the same motions, in
    order, as one thread computes, and an error in one still reaches the consumer."""
    frames = panning(frames=12) + [textured(seed=5)]  # ends on a cut
    alone = list(with_motion(frames))
    together = list(with_motion(frames, workers=3))
    assert [f is g for (f, _), (g, _) in zip(alone, together)] == [True] * len(frames)
    assert alone[0][1] is None and together[0][1] is None
    for (_, a), (_, b) in zip(alone[1:], together[1:]):
        assert np.array_equal(a.flow, b.flow) and np.array_equal(a.visible, b.visible)
    broken = frames[:5] + [frames[5][:50]]  # a frame of another size: the flow fails
    with pytest.raises(Exception):
        list(with_motion(broken, workers=3))


def test_flow_of_large_frames_is_computed_small_and_warps_nearly_as_well():
    """Frames above the flow size get their flow at half size here (as 1080p does at 540p):
    full-size vectors, and the warped previous frame matches nearly as well as full-size flow."""
    frames = panning(frames=6, shift=4, seed=5)
    full = [m for _, m in with_motion(frames)]
    capped = [m for _, m in with_motion(frames, max_flow_side=48)]  # 96x128 -> 48x64
    for t in range(1, len(frames)):
        assert capped[t].flow.shape == full[t].flow.shape == (96, 128, 2)
        assert capped[t].visible.shape == (96, 128)
        centre = capped[t].flow[20:-20, 20:-20]
        assert np.median(centre[..., 0]) == pytest.approx(4, abs=0.4)  # stretched back to full
        assert np.median(np.abs(centre[..., 1])) < 0.4
        errors = [np.abs(warp(frames[t - 1], m.flow).astype(float) - frames[t])[20:-20, 20:-20]
                  .mean() for m in (full[t], capped[t])]
        assert errors[1] < 1.5 * errors[0] + 1, errors
