"""Checks of a stylized video against its input that look at content, not counts: which input
frame each output frame came from, when it is shown, the A/V offset, colour tags, audio bytes.

Timestamps here come from decoding (each frame's own time), not from the pipeline's
packet-based probe, so the probe is checked too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe


def ffmpeg(*args) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
                    *map(str, args)], check=True)


def frame_times(path) -> list[float]:
    """Every shown frame's presentation time in seconds, as a decoder reports it (for AV1,
    which PyAV's libraries cannot decode, the sorted packet times)."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        try:
            return [float(f.time) for f in c.decode(stream)]
        except av.codec.codec.UnknownCodecError:
            return sorted(float(p.pts * stream.time_base) for p in c.demux(stream) if p.size)


def audio_start(path, index: int = 0) -> float:
    """When audio stream ``index`` starts to be heard, in seconds: the stream's start time,
    which leaves out the encoder's priming samples (AAC's 1024, Opus's pre-skip) that its
    first packets carry before that."""
    import av

    with av.open(str(path)) as c:
        stream = c.streams.audio[index]
        return float(stream.start_time * stream.time_base)


def audio_packets(path, index: int = 0) -> list[bytes]:
    import av

    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[index]) if p.size]


def colour_tags(path) -> tuple[str, str, str, str]:
    """(matrix, primaries, transfer, range) as the file's video stream declares them."""
    import av

    from framestyle.pipeline.colour import MATRICES, PRIMARIES, RANGES, TRANSFERS

    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return (MATRICES.get(cc.colorspace, "unspecified"),
                PRIMARIES.get(cc.color_primaries, "unspecified"),
                TRANSFERS.get(cc.color_trc, "unspecified"), RANGES.get(cc.color_range, "unspecified"))


# Y'CbCr -> R'G'B' coefficients (Kr, Kb) per matrix tag, from the standards themselves.
_KR_KB = {"bt709": (0.2126, 0.0722), "smpte170m": (0.299, 0.114), "bt470bg": (0.299, 0.114),
          "bt2020nc": (0.2627, 0.0593)}


def rgb_by_tags(path, points: list[tuple[int, int]], frame: int = 0) -> np.ndarray:
    """The RGB (0..255 floats) at ``points`` (x, y) of one frame, converted from the stored
    Y'CbCr with the matrix and range the file's own tags name, by the textbook formulas rather
    than by swscale, so it checks the pipeline's conversions independently."""
    import av

    matrix, _, _, colour_range = colour_tags(path)
    kr, kb = _KR_KB[matrix]
    kg = 1 - kr - kb
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(c.streams.video[0])):
            if i == frame:
                yuv = f.reformat(format="yuv444p").to_ndarray().astype(np.float64)
                break
    values = []
    for x, y in points:
        Y, Cb, Cr = yuv[0, y, x], yuv[1, y, x], yuv[2, y, x]
        if colour_range == "pc":
            y_, cb, cr = Y / 255, (Cb - 128) / 255, (Cr - 128) / 255
        else:
            y_, cb, cr = (Y - 16) / 219, (Cb - 128) / 224, (Cr - 128) / 224
        r = y_ + 2 * (1 - kr) * cr
        b = y_ + 2 * (1 - kb) * cb
        g = (y_ - kr * r - kb * b) / kg
        values.append([r * 255, g * 255, b * 255])
    return np.clip(np.array(values), 0, 255)


def patch_image(path: Path, size=(1280, 720)) -> tuple[list[tuple[int, int, int]],
                                                        list[tuple[int, int]]]:
    """An RGB PNG of flat colour patches (saturated primaries, skin, greys); returns the
    colours and each patch's centre."""
    from PIL import Image

    colours = [(235, 30, 30), (30, 200, 40), (40, 60, 220), (230, 180, 140),
               (128, 128, 128), (250, 250, 250), (20, 20, 20), (240, 220, 30)]
    w, h = size
    img = np.zeros((h, w, 3), np.uint8)
    centres = []
    for k, c in enumerate(colours):
        row, col = divmod(k, 4)
        img[row * h // 2:(row + 1) * h // 2, col * w // 4:(col + 1) * w // 4] = c
        centres.append((col * w // 4 + w // 8, row * h // 2 + h // 4))
    Image.fromarray(img).save(path)
    return colours, centres


def frame_identity(outputs: list[np.ndarray], expected: list[np.ndarray],
                   window: int = 2) -> tuple[list[int], list[float]]:
    """For each output frame, the index of the best-matching expected frame within ``window``
    of its own index, and the mean absolute error against its own expected frame."""
    best, errors = [], []
    for i, out in enumerate(outputs):
        near = range(max(0, i - window), min(len(expected), i + window + 1))
        diffs = {j: float(np.abs(out.astype(np.float32) - expected[j]).mean()) for j in near}
        best.append(min(diffs, key=diffs.get))
        errors.append(diffs.get(i, float("inf")))
    return best, errors


def decoded_frames(path) -> list[np.ndarray]:
    """Every shown frame of a video as RGB, at its stored size (through the pipeline's decoder,
    whose own frame placement the fidelity tests check)."""
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe

    info = probe(str(path))
    return list(iter_frames(str(path), info, 0, info.frames, (info.width, info.height)))


def frame_errors(outputs: list[np.ndarray], expected: list[np.ndarray]) -> np.ndarray:
    """Mean absolute difference of output frame i and expected frame i, for every i."""
    assert len(outputs) == len(expected)
    return np.array([np.abs(o.astype(float) - e.astype(float)).mean()
                     for o, e in zip(outputs, expected)])


def assert_video_uses(styles: list[str], clip, tmp_path) -> None:
    """One video job per style, in one pass: output frame i is the style run on input frame i.

    Compared at half size: a few steps of training leave pixel-level noise that H.264's 4:2:0
    chroma cannot carry, so full-size errors measure the codec, not the model."""
    from framestyle.models import hub
    from framestyle.pipeline.stylize import Stylizer
    from framestyle.pipeline.video_job import VideoJob, run_video_jobs

    outputs = [tmp_path / f"video-{i}.mp4" for i in range(len(styles))]
    run_video_jobs([VideoJob(input=str(clip), output=str(out), style=style, temporal=0, crf=10)
                    for style, out in zip(styles, outputs)], progress=False)
    frames = decoded_frames(clip)
    for style, out in zip(styles, outputs):
        expected = [half(f) for f in Stylizer(hub.resolve(style))(frames)]
        errors = frame_errors([half(f) for f in decoded_frames(out)], expected)
        assert errors.max() < 8, (style, errors.max())
        assert errors.max() < 0.5 * frame_errors(expected, [half(f) for f in frames]).min()


def half(frame: np.ndarray) -> np.ndarray:
    f = frame[:frame.shape[0] // 2 * 2, :frame.shape[1] // 2 * 2].astype(np.float32)
    return (f[::2, ::2] + f[1::2, ::2] + f[::2, 1::2] + f[1::2, 1::2]) / 4
