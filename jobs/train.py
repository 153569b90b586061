"""framestyle train RECIPE --data URI --name NAME [...] [recipe options]: train a style network
on the Ray cluster (Ray Train) and publish it to the model hub."""

from __future__ import annotations

import argparse
import sys
import types
import typing

from pydantic import ValidationError

from ..core.errors import InputError
from ..training.recipes import RECIPES

HELP = ("train a style network on Ray Train (fast-style, cyclegan, pix2pix, distill, temporal) "
        "and publish it")
FLAGS = {"data": "--data", "data_b": "--data-b"}
EXTRA_ARGS = True  # the recipe's own options, parsed once the recipe is known
ADD_HELP = False  # -h shows the chosen recipe's options too
EPILOG = """\
recipes:
""" + "\n".join(f"  {name:<11} {entry.help}" for name, entry in RECIPES.items()) + """

examples:
  framestyle train distill --teacher builtin:7 --data s3://bucket/coco/ --name starry-slim --width 0.5
  framestyle train fast-style --style-image mosaic.jpg --data coco/train2017/ --name mosaic --workers 4
  framestyle train cyclegan --data monet2photo/trainA --data-b monet2photo/trainB --name monet
  framestyle train pix2pix --data facades/train/ --name facades --steps 80000
  framestyle train temporal --init mosaic --data s3://bucket/clips/ --name mosaic-steady --steps 2000
  framestyle train fast-style --help          # a recipe's own options

The run folder STORAGE/NAME (default beside $FRAMESTYLE_MODELS, in framestyle-runs/) holds Ray
Train's checkpoints, metrics.csv, loss.png and samples/step_*.png. Running the same command again
resumes the run at its last checkpoint ("resuming NAME at step N"); a larger --steps continues a
finished run. At the end the network is published to the model hub as NAME (cyclegan: NAME-a2b
and NAME-b2a), so `framestyle video IN OUT --style NAME` uses it at once.

exit codes: 0 trained and published, 2 bad input (nothing published), 4 the run is already
training elsewhere, 1 other failure
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-h", "--help", action=RecipeHelp, help="show this help (with RECIPE: "
                        "also its options) and exit")
    parser.add_argument("recipe", choices=list(RECIPES), metavar="RECIPE",
                        help=f"one of {', '.join(RECIPES)}")
    parser.add_argument("--data", action="append", required=True, metavar="URI",
                        help="training images (videos for temporal): folder, s3:// prefix, "
                        "glob or .tar/.zip archive (repeat for more)")
    parser.add_argument("--data-b", action="append", metavar="URI",
                        help="the second image set (cyclegan's domain B)")
    parser.add_argument("--name", required=True, help="run and model name")
    parser.add_argument("--workers", type=int, default=2,
                        help="data-parallel workers, one GPU each on GPU clusters (default 2)")
    parser.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    parser.add_argument("--image-size", type=int, default=256, metavar="PX",
                        help="training crop size (default 256)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="images per worker and step (default: the recipe's)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default: the "
                        "recipe's)")
    parser.add_argument("--storage", default=None, metavar="URI",
                        help="where runs live: a folder or s3:// prefix (default: beside "
                        "$FRAMESTYLE_MODELS)")
    parser.add_argument("--checkpoint-every", type=int, default=100, metavar="N")
    parser.add_argument("--sample-every", type=int, default=100, metavar="N",
                        help="steps between sample grids in the run folder")
    parser.add_argument("--log-every", type=int, default=10, metavar="N",
                        help="steps between progress updates and metrics.csv rows")
    parser.add_argument("--max-failures", type=int, default=3,
                        help="worker failures Ray Train recovers from (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: RAY_ADDRESS or a local instance)")


class RecipeHelp(argparse.Action):
    def __init__(self, option_strings, dest, help=None):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        recipe = getattr(namespace, "recipe", None)
        if recipe in RECIPES:
            print()
            recipe_parser(recipe).print_help()
        parser.exit()


def recipe_parser(name: str) -> argparse.ArgumentParser:
    """Flags for a recipe's ``Options`` fields: ``--field-name``, typed, with its description."""
    from ..training.recipes import load_recipe

    parser = argparse.ArgumentParser(prog=f"framestyle train {name}", add_help=False,
                                     usage=argparse.SUPPRESS)
    group = parser.add_argument_group(f"{name} options")
    for field_name, field in load_recipe(name).Options.model_fields.items():
        flag = "--" + field_name.replace("_", "-")
        kind = _plain_type(field.annotation)
        default = "required" if field.is_required() else f"default {field.get_default(call_default_factory=True)}"
        text = f"{field.description or ''} ({default})".strip()
        if kind is bool:
            group.add_argument(flag, dest=field_name, action=argparse.BooleanOptionalAction,
                               default=None, help=text)
        elif kind is typing.Literal:
            group.add_argument(flag, dest=field_name, default=None, help=text,
                               choices=typing.get_args(field.annotation))
        else:
            group.add_argument(flag, dest=field_name, default=None, help=text,
                               type=str if kind is dict else kind)
    return parser


def _plain_type(annotation):
    """int for ``int | None``, str for a str field; dicts come as JSON text."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    return typing.get_origin(annotation) or annotation


def run(args: argparse.Namespace) -> dict:
    from ..training.settings import TrainSettings
    from ..training.trainer import train

    parsed, unknown = recipe_parser(args.recipe).parse_known_args(args.extra)
    if unknown:
        raise InputError(f"{' '.join(unknown)}: not an option of {args.recipe} "
                         f"(see framestyle train {args.recipe} --help)")
    options = {k: v for k, v in vars(parsed).items() if v is not None}
    settings = TrainSettings(
        recipe=args.recipe, data=args.data, data_b=args.data_b, name=args.name,
        workers=args.workers, steps=args.steps, image_size=args.image_size,
        batch_size=args.batch_size, lr=args.lr, storage=args.storage,
        checkpoint_every=args.checkpoint_every, sample_every=args.sample_every,
        log_every=args.log_every, max_failures=args.max_failures, seed=args.seed)
    return train(settings, options, address=args.address, progress=not args.json,
                 say=lambda text: print(text, file=sys.stderr))


# job files (jobs/spec.py): spec key -> TrainSettings field; options hold the other settings
# and the recipe's own options
SPEC_KEYS = {"recipe": "recipe", "inputs": "data", "inputs_b": "data_b", "name": "name",
             "output": "storage"}


def spec_job(fields: dict) -> tuple:
    """(TrainSettings, recipe options), both validated."""
    from ..core.spec import field_error
    from ..training.recipes import load_recipe
    from ..training.settings import TrainSettings

    known = set(TrainSettings.model_fields)
    settings = TrainSettings(**{k: v for k, v in fields.items() if k in known})
    options = {k: v for k, v in fields.items() if k not in known}
    try:
        load_recipe(settings.recipe).Options.model_validate(options)
    except ValidationError as e:
        raise field_error(e) from None
    return settings, options


def run_spec_job(job: tuple, address: str | None, progress: bool) -> dict:
    from ..training.trainer import train

    settings, options = job
    return train(settings, options, address=address, progress=progress,
                 say=lambda text: print(text, file=sys.stderr))


def summary_line(result: dict) -> str:
    if result.get("already_published"):
        return (f"{result['name']}: already trained to step {result['steps']} and published as "
                f"{', '.join(result['published'])}")
    losses = ", ".join(f"{k} {v:.4g}" for k, v in result["losses"].items())
    skipped = f", {result['skipped']} unreadable image(s) skipped" if result["skipped"] else ""
    return (f"{result['name']}: {result['steps']} steps of {result['recipe']} in "
            f"{result['seconds']:.0f} s ({losses}){skipped}; published "
            f"{', '.join(result['published'])}; run folder {result['run']}")
