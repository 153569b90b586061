"""NVDEC/NVENC where a node has them, and what happens where it does not: the choices, the NVENC
command line, and joining a video whose chunks were made by NVENC and by CPUs, or by workers
with different CPU shares. (No GPU here: the hardware itself is exercised by benchmarks.gpu on a
GPU machine.)"""

from __future__ import annotations

import subprocess
from dataclasses import replace

import numpy as np
import pytest
import torch

from framestyle.pipeline import gpu_codecs
from framestyle.pipeline.assemble import assemble, joinable
from framestyle.pipeline.colour import from_rgb_filters
from framestyle.pipeline.decode import iter_frames, shown_timeline
from framestyle.pipeline.encode import EncodeSettings, FrameEncoder
from framestyle.pipeline.ffmpeg_exe import ffmpeg_exe, ffmpeg_output
from framestyle.pipeline.formats import output_format
from framestyle.pipeline.gpu_codecs import (NO_GPU_CODECS, NVENC, NVENC_ENCODERS, SOFTWARE,
                                            NodeCodecs, encoder_for)
from framestyle.pipeline.plan import gop_size
from framestyle.pipeline.probe import probe
from media import decoded_frames, frame_errors, frame_identity


def test_each_node_uses_what_it_has():
    everything = NodeCodecs(True, frozenset(NVENC_ENCODERS))
    assert encoder_for("h264", NVENC, everything) == NVENC
    assert encoder_for("h264", NVENC, NodeCodecs(True, frozenset({"hevc"}))) == SOFTWARE
    assert encoder_for("h264", SOFTWARE, everything) == SOFTWARE  # the video chose the CPU
    assert encoder_for("prores", NVENC, everything) == SOFTWARE  # no NVENC for ProRes
    # this machine has no NVIDIA device: nothing is tried, CPU codecs everywhere
    assert not gpu_codecs.has_nvidia_device()
    assert gpu_codecs.node_codecs() == NO_GPU_CODECS


def test_nvenc_settings_keep_quality_gop_and_no_b_frames():
    settings = EncodeSettings(width=640, height=360, fps=25, gop=50, crf=23, codec="hevc",
                              encoder=NVENC)
    options = settings.ffmpeg_options()
    assert options["vcodec"] == "hevc_nvenc"
    assert (options["cq"], options["g"], options["bf"], options["b:v"]) == ("23", "50", 0, 0)
    assert options["vf"] == replace(settings, encoder=SOFTWARE).ffmpeg_options()["vf"]
    # every NVENC encoder we name is one the bundled ffmpeg has
    encoders = ffmpeg_output(ffmpeg_exe(), "-encoders")
    assert all(f" {name} " in encoders for name in NVENC_ENCODERS.values())


def test_nvdec_that_cannot_start_falls_back_to_the_cpu(clips):
    """``-hwaccel cuda`` without a usable GPU makes ffmpeg fail outright here: the decoder
    then reads the stream on the CPU, frame for frame the same."""
    path = str(clips["bunny"])
    info = probe(path)
    size = (info.width, info.height)
    plain = list(iter_frames(path, info, 10, 20, size))
    hardware = list(iter_frames(path, info, 10, 20, size, hwaccel=True))
    assert len(hardware) == 20 and all(np.array_equal(a, b) for a, b in zip(plain, hardware))


def settings_for(info, **fields) -> EncodeSettings:
    """Encoding at the source's own size and rate, with the job's keyframe interval."""
    return EncodeSettings(width=info.width, height=info.height, fps=info.fps,
                          gop=gop_size(info.fps), **fields)


def test_chunks_from_nvenc_and_cpu_nodes_join_into_one_stream(clips, tmp_path):
    """A video meant for NVENC whose second chunk ran on a node without it: the NVENC chunk is
    re-encoded on the CPU at assembly, and the output is one stream with every frame in place.
    (The NVENC chunk is stood in for by an H.264 stream with other codec parameters, named as
    h264_nvenc names its streams.)"""
    path = str(clips["bunny"])  # 50 frames at 25 fps, 5.1 audio
    info = probe(path)
    frames = decoded_frames(path)
    settings = settings_for(info, crf=10)
    cpu_chunk, nvenc_chunk = str(tmp_path / "chunk-0.mkv"), str(tmp_path / "chunk-1.mkv")
    with FrameEncoder(cpu_chunk, settings) as encoder:
        for frame in frames[:20]:
            encoder.write(frame)
    stand_in = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
         f"{info.width}x{info.height}", "-i", "pipe:", "-vf",
         ",".join(from_rgb_filters(settings.colour, "yuv420p")), "-c:v", "libx264",
         "-profile:v", "baseline", "-crf", "10", "-metadata:s:v:0",
         "encoder=Lavc62 h264_nvenc", "-f", "matroska", nvenc_chunk],
        input=b"".join(f.tobytes() for f in frames[20:]), capture_output=True)
    assert stand_in.returncode == 0, stand_in.stderr

    out = str(tmp_path / "out.mp4")
    result, notes = assemble([cpu_chunk, nvenc_chunk], path, info, shown_timeline(info),
                             output_format(out), out, str(tmp_path), settings=settings)
    assert result.frames == 50 and len(result.audio) == 1
    assert notes[-1].startswith("1 of 2 chunks encoded with NVENC were re-encoded on the CPU")
    output = decoded_frames(out)
    assert frame_identity(output, frames)[0] == list(range(50))  # each frame in its place
    errors = frame_errors(output, frames)
    assert errors[:20].max() < 2.5 and errors[20:].max() < 3.5, errors  # one more generation

    # without the video's settings (or with no NVENC chunk to blame) it stops, in one line
    with pytest.raises(Exception, match="cannot be joined"):
        assemble([cpu_chunk, nvenc_chunk], path, info, shown_timeline(info),
                 output_format(out), str(tmp_path / "again.mp4"), str(tmp_path))


def eight_frame_task(path: str, tmp_path, **fields):
    """A chunk task for the first 8 frames of ``path`` in built-in style 7."""
    from framestyle.core import storage
    from framestyle.models.hub import resolve
    from framestyle.pipeline.chunk_worker import ChunkTask
    from framestyle.pipeline.inference import InferenceOptions
    from framestyle.pipeline.plan import Chunk

    info = probe(path)
    return ChunkTask(model=resolve("builtin:7"), inference=InferenceOptions(), input_uri=path,
                     input_info=storage.require(path),
                     chunk=Chunk(index=0, start=0, end=8, warmup=0), video=info, seek=None,
                     encode=settings_for(info),
                     chunk_uri=str(tmp_path / "chunk-0.mkv"), **fields)


@pytest.mark.parametrize("codec", ["h264", "hevc", "av1"])
def test_chunks_from_workers_with_different_cpu_shares_join_by_copy(clips, tmp_path, codec):
    """A one-CPU actor encodes on one thread, a GPU actor's host share on several: their chunks
    of one video must still join by copy, with every frame in place. (x265 wrote its thread
    counts into the stream's headers until told not to.)"""
    path = str(clips["bunny"])
    info = probe(path)
    frames = decoded_frames(path)[:12]
    chunks = []
    for i, threads in enumerate((1, 4)):
        chunks.append(str(tmp_path / f"chunk-{i}.mkv"))
        settings = settings_for(info, codec=codec, threads=threads)
        with FrameEncoder(chunks[-1], settings) as encoder:
            for frame in frames[6 * i:6 * i + 6]:
                encoder.write(frame)
    assert joinable(chunks, None, str(tmp_path)) == (chunks, None)  # nothing re-encoded


def test_a_chunk_workers_decoder_and_encoder_use_its_cpu_share(clips, tmp_path, monkeypatch):
    """ffmpeg left to itself takes every core of the node for each decoder and encoder (x264:
    1.5 threads a core), so N one-CPU actors on an N-core node would run N x 1.5N threads."""
    from framestyle.pipeline import decode, encode
    from framestyle.pipeline.chunk_worker import ChunkWorker

    commands = []
    for module in (decode, encode):
        def recording(graph, *args, spawn=module.spawn, **kwargs):
            commands.append(graph.get_args())
            return spawn(graph, *args, **kwargs)
        monkeypatch.setattr(module, "spawn", recording)
    monkeypatch.setattr(ChunkWorker, "stylizer_for",
                        lambda self, task: type("Plain", (), {"device": torch.device("cpu"),
                                                              "__call__": lambda s, f: f})())
    task = eight_frame_task(str(clips["bunny"]), tmp_path)
    *written, record = ChunkWorker(threads=1).process(task)  # a worker thread of the command
    assert record.frames == 8
    encoder, decoder = sorted(commands, key=lambda args: args[args.index("-i") + 1] != "pipe:")
    assert decoder[decoder.index("-threads") + 1] == "1" and decoder.index("-threads") < \
        decoder.index("-i")  # the decoder's, not the output's
    assert encoder[encoder.index("-threads") + 1] == "1" and encoder.index("-threads") > \
        encoder.index("-i")


@pytest.mark.parametrize("allowed", [True, False])
def test_no_hardware_codecs_means_no_nvdec_either(clips, tmp_path, monkeypatch, allowed):
    """On a GPU node that has NVDEC, a chunk decodes with it unless the job said
    --no-hardware-codecs. (The node's codecs and the GPU are stood in for: a stylizer that
    claims the GPU and returns its frames.)"""
    from framestyle.pipeline import chunk_worker
    from framestyle.pipeline.chunk_worker import ChunkWorker

    asked = []

    def decode(*args, hwaccel=False, **kwargs):
        asked.append(hwaccel)
        return iter_frames(*args, **kwargs)  # the CPU decoder: there is no GPU here

    class OnTheGpu:
        device = torch.device("cuda")

        def __call__(self, frames):
            return frames

    monkeypatch.setattr(chunk_worker, "node_codecs", lambda: NodeCodecs(True, frozenset()))
    monkeypatch.setattr(chunk_worker, "iter_frames", decode)
    monkeypatch.setattr(ChunkWorker, "stylizer_for", lambda self, task: OnTheGpu())
    task = eight_frame_task(str(clips["bunny"]), tmp_path, nvdec=allowed)
    *written, record = ChunkWorker().process(task)
    assert sum(written) == record.frames == 8
    assert asked == [allowed]


def test_a_fast_worker_reports_its_frames_a_few_times_a_second_not_every_batch(
        clips, tmp_path, monkeypatch):
    """Each count a chunk yields is an object its actor stores and the driver fetches: with a
    model as fast as a GPU's, one per batch cost the job several per cent on Ray. The counts
    still add up to the chunk's frames."""
    from framestyle.pipeline import chunk_worker
    from framestyle.pipeline.chunk_worker import ChunkWorker

    monkeypatch.setattr(ChunkWorker, "stylizer_for",
                        lambda self, task: type("Instant", (), {"device": torch.device("cpu"),
                                                                "__call__": lambda s, f: f})())
    counts = {}
    for seconds in (0.0, 3600.0):
        monkeypatch.setattr(chunk_worker, "PROGRESS_SECONDS", seconds)
        task = eight_frame_task(str(clips["bunny"]), tmp_path / str(seconds))
        *counts[seconds], record = ChunkWorker(batch_size=1, threads=1).process(task)
        assert record.frames == 8
    assert counts[0.0] == [1] * 8  # every batch
    assert counts[3600.0] == [8]  # once, at the end
