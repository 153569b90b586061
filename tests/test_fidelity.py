"""The fidelity matrix: inputs people really have, through the chunked video job, checked by
content. Every case checks that output frame i is input frame i stylized (against the
stylizer run on an unbroken decode of the input), that each frame is shown when the input's
was (across chunk seams), the A/V offset, the colour tags, and that audio packets are unchanged
where the container can carry them.

Cases: constant, fractional (30000/1001) and variable rate with gaps; a stream-copy trim (edit
list); video starting 0.8 s after its audio; rotation 90, 180 and 270; odd
size; 10-bit; BT.601 SD, BT.709 HD, untagged HD, HDR PQ and HLG; two audio tracks; no audio;
an interlaced MPEG-TS broadcast recording (frame and field rate); .mp4, .mov, .mkv and .webm
outputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from framestyle.pipeline.decode import iter_frames, output_size, shown_timeline
from framestyle.pipeline.probe import probe
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer
from helpers import run_cli
from media import (audio_packets, audio_start, colour_tags, ffmpeg, frame_identity, frame_times,
                   patch_image, rgb_by_tags)

STYLE = "builtin:4"
TESTSRC = "testsrc2=size={size}:rate={rate}"  # moving pattern and a counter: every frame differs


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("fidelity")
    clips = {}

    def make(name, *args):
        clips[name] = d / name
        ffmpeg(*args, d / name)

    sine = "sine=frequency=440:sample_rate=48000:duration={}"
    x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    # 25 fps, two audio tracks (AAC stereo, MP3 mono), rotated 270 (phones held the other way)
    make("base.mp4", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate=25),
         "-f", "lavfi", "-i", sine.format(2), "-f", "lavfi", "-i", sine.format(2),
         "-frames:v", 40, "-map", "0:v", "-map", "1:a", "-map", "2:a", *x264,
         "-c:a:0", "aac", "-ac:a:0", 2, "-c:a:1", "libmp3lame", "-ac:a:1", 1)
    ffmpeg("-display_rotation", 270, "-i", clips["base.mp4"], "-map", "0", "-c", "copy",
           d / "rot270.mp4")
    clips["rot270.mp4"] = d / "rot270.mp4"
    # 29.97 fps, no audio, upside down
    make("ntsc.mp4", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate="30000/1001"),
         "-frames:v", 36, *x264)
    for angle in (90, 180):
        ffmpeg("-display_rotation", angle, "-i", clips["ntsc.mp4"], "-c", "copy",
               d / f"rot{angle}.mp4")
        clips[f"rot{angle}.mp4"] = d / f"rot{angle}.mp4"
    # variable rate: irregular steps and a 1.5 s pause after frame 19 (a screen recording)
    make("vfr.mp4", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate=25),
         "-f", "lavfi", "-i", sine.format(4), "-frames:v", 50,
         "-vf", "setpts='(N+if(gte(N,20),37.5,0)+0.4*mod(N,3))/25/TB'", "-fps_mode", "passthrough",
         "-shortest", *x264, "-c:a", "aac")
    # a stream-copy trim that starts between keyframes: an edit list hides the lead-in
    make("long.mp4", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate=25),
         "-f", "lavfi", "-i", sine.format(6), "-t", 6, *x264, "-g", 50, "-c:a", "aac")
    ffmpeg("-ss", 3.3, "-i", clips["long.mp4"], "-t", 1.6, "-c", "copy", d / "trim.mp4")
    clips["trim.mp4"] = d / "trim.mp4"
    # video starting 0.8 s after its audio
    make("late.mp4", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate=25),
         "-f", "lavfi", "-i", sine.format(2.5), "-filter_complex",
         "[0:v]trim=end_frame=40,setpts=PTS+0.8/TB[v]", "-map", "[v]", "-map", "1:a",
         *x264, "-c:a", "aac")
    # odd size, 10-bit 4:4:4, Vorbis audio in Matroska
    make("odd10.mkv", "-f", "lavfi", "-i", TESTSRC.format(size="98x62", rate=25),
         "-f", "lavfi", "-i", sine.format(1.2), "-frames:v", 30, "-vf", "format=yuv444p10le,crop=97:61",
         "-c:v", "libx264",
         "-preset", "ultrafast", "-pix_fmt", "yuv444p10le", "-c:a", "libvorbis", "-shortest")
    # a broadcast recording: interlaced BT.601 SD MPEG-2, top field first, MP2 audio, in
    # MPEG-TS (whose clock starts at 1.4 s, not 0)
    make("broadcast.ts", "-f", "lavfi", "-i", TESTSRC.format(size="160x120", rate=25),
         "-f", "lavfi", "-i", sine.format(1.2), "-frames:v", 30, "-vf",
         "tinterlace=interleave_top,setfield=tff,"
         "setparams=colorspace=smpte170m:color_primaries=smpte170m:color_trc=smpte170m:range=tv",
         "-flags", "+ildct+ilme", "-c:v", "mpeg2video", "-q:v", 2, "-c:a", "mp2",
         "-shortest")
    # 12 s of MPEG-TS: long enough that chunks must really seek in a file without an index
    make("long.ts", "-f", "lavfi", "-i", TESTSRC.format(size="96x64", rate=25),
         "-f", "lavfi", "-i", sine.format(12), "-t", 12, "-c:v", "mpeg2video", "-g", 12,
         "-q:v", 3, "-c:a", "mp2")
    return clips


@pytest.fixture(scope="session")
def identity_style(tmp_path_factory) -> str:
    """A network that returns its input, registered only here (a TorchScript file): what comes
    out is then exactly what the pipeline's decode and encode did to the colours."""

    class Identity(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path_factory.mktemp("identity") / "identity.pt"
    torch.jit.script(Identity()).save(str(path))
    return str(path)


def stylize(capsys, src, out, *extra) -> dict:
    code, stdout, err = run_cli(capsys, "video", src, out, "--style", STYLE, "--temporal", "0",
                                "--crf", "12", "--chunk-seconds", "0.4", "--json", *extra)
    assert code == 0, err
    return json.loads(stdout)


def check_frames(src, out, deinterlace="frame", style=STYLE):
    """Output frame i is input frame i stylized, and is shown when the input's frame i was."""
    info, result = probe(str(src)), probe(str(out))
    size = (result.width, result.height)
    assert size == output_size(info, None)
    timeline = shown_timeline(info, deinterlace)
    inputs = list(iter_frames(str(src), info, 0, len(timeline), size, deinterlace))
    stylizer = Stylizer(resolve(style))
    expected = [s for f in inputs for s in stylizer([f])]
    outputs = list(iter_frames(str(out), result, 0, result.frames, size))
    assert len(outputs) == len(expected)
    best, errors = frame_identity(outputs, expected)
    assert best == list(range(len(outputs))), "output frames out of place"
    assert max(errors) < 8, errors

    times = [t * info.time_base for t in timeline]
    if deinterlace == "frame":
        assert np.allclose(frame_times(src), [float(t) for t in times], atol=1e-6)  # the probe
    # the output starts at 0 where the input file did (its start time, as ffmpeg does)
    assert np.allclose(frame_times(out), [float(t - info.start_time) for t in times], atol=1.5e-3)
    return info, result


def av_offset(path, index=0) -> float:
    return frame_times(path)[0] - audio_start(path, index)


def test_two_audio_tracks_rotation_270_into_mov(ray_session, media, tmp_path, capsys):
    out = tmp_path / "out.mov"
    summary = stylize(capsys, media["rot270.mp4"], out)
    assert summary["chunks"] >= 2 and summary["audio_reencoded"] == []
    info, result = check_frames(media["rot270.mp4"], out)
    assert result.rotation == info.rotation == 270
    assert [a.codec for a in result.audio] == ["aac", "mp3"]
    for i in range(2):
        assert audio_packets(out, i) == audio_packets(media["rot270.mp4"], i)
        assert av_offset(out, i) == pytest.approx(av_offset(media["rot270.mp4"], i), abs=2e-3)
    assert colour_tags(out) == ("smpte170m", "smpte170m", "smpte170m", "tv")  # untagged SD


def test_fractional_rate_no_audio_rotation_180_into_mkv(ray_session, media, tmp_path, capsys):
    out = tmp_path / "out.mkv"
    summary = stylize(capsys, media["rot180.mp4"], out)
    assert summary["audio_streams"] == 0 and summary["codec"] == "h264"
    info, result = check_frames(media["rot180.mp4"], out)
    assert result.rotation == 180 and result.audio == ()


def test_variable_rate_with_a_pause_keeps_every_frame_at_its_time(ray_session, media, tmp_path,
                                                                  capsys):
    out = tmp_path / "out.mp4"
    summary = stylize(capsys, media["vfr.mp4"], out)
    assert summary["chunks"] >= 4
    info, _ = check_frames(media["vfr.mp4"], out)
    gaps = np.diff(frame_times(out))
    assert gaps.max() > 1.5 and gaps.min() < 0.04  # still variable: the pause is kept
    assert audio_packets(out) == audio_packets(media["vfr.mp4"])
    assert av_offset(out) == pytest.approx(av_offset(media["vfr.mp4"]), abs=2e-3)


def test_stream_copy_trim_with_edit_list(ray_session, media, tmp_path, capsys):
    src = media["trim.mp4"]
    import av

    with av.open(str(src)) as c:  # the case is real: more packets than shown frames
        packets = sum(1 for p in c.demux(c.streams.video[0]) if p.size)
    info = probe(str(src))
    assert packets > info.frames == len(frame_times(src))
    out = tmp_path / "out.mp4"
    summary = stylize(capsys, src, out)
    assert summary["frames_out"] == summary["frames_in"] == info.frames
    check_frames(src, out)
    assert audio_packets(out) == audio_packets(src)
    assert av_offset(out) == pytest.approx(av_offset(src), abs=2e-3)


def test_video_starting_after_audio_into_webm(ray_session, media, tmp_path, capsys):
    src = media["late.mp4"]
    assert av_offset(src) == pytest.approx(0.8, abs=0.03)
    out = tmp_path / "out.webm"
    summary = stylize(capsys, src, out)
    assert summary["codec"] == "vp9"
    assert summary["audio_reencoded"] == [
        "audio stream 0: aac re-encoded to opus (.webm cannot carry aac)"]
    check_frames(src, out)
    assert [a.codec for a in probe(str(out)).audio] == ["opus"]
    assert av_offset(out) == pytest.approx(av_offset(src), abs=2e-3)  # re-encoded, still in place


def test_odd_size_10_bit_and_vorbis_into_mp4(ray_session, media, tmp_path, capsys):
    src = media["odd10.mkv"]
    info = probe(str(src))
    assert (info.width, info.height, info.pix_fmt) == (97, 61, "yuv444p10le")
    out = tmp_path / "out.mp4"
    summary = stylize(capsys, src, out)
    assert summary["audio_reencoded"] == [
        "audio stream 0: vorbis re-encoded to aac (.mp4 cannot carry vorbis)"]
    _, result = check_frames(src, out)
    assert (result.width, result.height) == (96, 60)
    assert [a.codec for a in result.audio] == ["aac"]
    assert av_offset(out) == pytest.approx(av_offset(src), abs=2e-3)


@pytest.mark.parametrize("mode", ["frame", "field"])
def test_interlaced_broadcast_is_deinterlaced(ray_session, media, tmp_path, capsys, mode):
    src = media["broadcast.ts"]
    info = probe(str(src))
    assert info.interlaced == "tff" and info.start_time > 1
    out = tmp_path / f"out-{mode}.mp4"
    summary = stylize(capsys, src, out, "--deinterlace", mode)
    assert summary["frames_out"] == info.frames * (2 if mode == "field" else 1)
    assert summary["audio_reencoded"] == [
        "audio stream 0: mp2 re-encoded to aac (.mp4 cannot carry mp2)"]
    check_frames(src, out, deinterlace=mode)
    assert colour_tags(out) == ("smpte170m", "smpte170m", "smpte170m", "tv")
    assert av_offset(out) == pytest.approx(av_offset(src), abs=2e-3)
    # deinterlaced: no combing, i.e. adjacent rows agree about as well as rows two apart
    frame = next(iter_frames(str(out), probe(str(out)), 10, 1, (160, 120))).astype(float)
    comb = np.abs(frame[1:] - frame[:-1]).mean() / np.abs(frame[2:] - frame[:-2]).mean()
    assert comb < 1.2


def test_seeking_in_mpeg_ts_lands_on_the_exact_frame(media):
    """TS has no index: ffmpeg bisects the file on a clock that leads the frames' own and
    then reads on to the next keyframe, so a plain -ss lands late. Every seeked decode must
    still match the unbroken one frame for frame."""
    src = str(media["long.ts"])
    info = probe(src)
    assert not info.indexed and info.frames == 300
    full = list(iter_frames(src, info, 0, info.frames, (96, 64)))
    for start in (100, 151, 206, 290):
        assert info.seek_point(start).demux is not None  # really seeks
        part = list(iter_frames(src, info, start, 5, (96, 64)))
        assert all(np.array_equal(a, b) for a, b in zip(part, full[start:start + 5])), start


def test_outputs_refused_before_any_work(media, tmp_path, capsys):
    for target, extra, message in [("out.avi", [], "extension must be one of"),
                                   ("out.webm", ["--codec", "h264"], ".webm cannot hold h264"),
                                   ("out.mp4", ["--codec", "prores"], ".mp4 cannot hold prores")]:
        code, out, err = run_cli(capsys, "video", media["base.mp4"], tmp_path / target,
                                 "--style", STYLE, *extra)
        assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("codec,suffix,pix_fmt", [("hevc", ".mp4", "yuv420p"),
                                                  ("prores", ".mov", "yuv422p10le"),
                                                  ("ffv1", ".mkv", "yuv444p"),
                                                  ("av1", ".webm", "yuv420p")])
def test_codecs(ray_session, media, tmp_path, capsys, codec, suffix, pix_fmt):
    out = tmp_path / f"out{suffix}"
    summary = stylize(capsys, media["rot90.mp4"], out, "--codec", codec)
    assert summary["codec"] == codec
    result = probe(str(out))
    assert result.codec == codec and result.pix_fmt == pix_fmt and result.rotation == 90
    check_frames(media["rot90.mp4"], out)
    if codec == "hevc":  # hvc1, not hev1: what Apple's players open
        import av

        with av.open(str(out)) as c:
            assert c.streams.video[0].codec_context.codec_tag == "hvc1"


# Colour: flat patches through a network that changes nothing.

def _patch_clip(tmp_path, name, vf, *codec):
    png = tmp_path / "patches.png"
    colours, centres = patch_image(png)
    path = tmp_path / name
    ffmpeg("-loop", 1, "-i", png, "-frames:v", 3, "-vf", vf, *codec, path)
    return path, np.array(colours, float), centres


@pytest.mark.parametrize("tagged", [True, False])
def test_hd_colours_come_back_within_2_levels(ray_session, identity_style, tmp_path, capsys,
                                              tagged):
    tags = "bt709" if tagged else "unknown"  # scale would tag the frames itself: set them here
    tags = f",setparams=colorspace={tags}:color_primaries={tags}:color_trc={tags}:range=tv"
    src, colours, centres = _patch_clip(
        tmp_path, "hd.mp4", f"scale=out_color_matrix=bt709:out_range=tv,format=yuv444p{tags}",
        "-c:v", "libx264", "-qp", 0, "-preset", "ultrafast")
    assert probe(str(src)).colour.tagged == tagged
    out = tmp_path / "out.mp4"
    stylize(capsys, src, out, "--style", identity_style, "--trust-code", "--crf", "0")
    assert colour_tags(out) == ("bt709", "bt709", "bt709", "tv")
    got = rgb_by_tags(out, centres)
    assert np.abs(got - colours).max() <= 2, np.round(got - colours, 1)


@pytest.mark.parametrize("transfer", ["smpte2084", "arib-std-b67"])
def test_hdr_is_tone_mapped_to_sdr_bt709(ray_session, identity_style, tmp_path, capsys,
                                         transfer):
    to_hdr = (f"format=gbrpf32le,zscale=tin=iec61966-2-1:min=gbr:pin=709:rin=full:t={transfer}"
              f":m=2020_ncl:p=2020:r=limited:npl=203,format=yuv420p10le,setparams="
              f"colorspace=bt2020nc:color_primaries=bt2020:color_trc={transfer}:range=tv")
    src, colours, centres = _patch_clip(tmp_path, "hdr.mp4", to_hdr, "-c:v", "libx265",
                                        "-x265-params", "lossless=1:log-level=error")
    assert probe(str(src)).colour.is_hdr
    out = tmp_path / "out.mp4"
    stylize(capsys, src, out, "--style", identity_style, "--trust-code")
    assert colour_tags(out) == ("bt709", "bt709", "bt709", "tv")
    got = rgb_by_tags(out, centres)
    # Tone mapping compresses highlights, so levels drop; hue and saturation must survive
    # (HDR read as SDR comes out grey and washed out instead).
    assert np.all(got.argmax(axis=1)[:4] == colours.argmax(axis=1)[:4])
    saturation = (got.max(1) - got.min(1)) / got.max(1)
    assert np.all(saturation[[0, 1, 2, 7]] > 0.75)
    assert np.all(np.diff(got[[6, 4, 5]].mean(1)) > 40)  # black < grey < white, well apart
    assert np.abs(got - colours).mean() < 40
