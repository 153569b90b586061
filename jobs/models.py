"""framestyle models list: the built-in styles and the models registered under $FRAMESTYLE_MODELS."""

from __future__ import annotations

import argparse

from ..models.loading import BUILTIN_STYLES
from ..pipeline.styles import REGISTRY_ENV, registry_entries, registry_root

HELP = f"list the built-in styles and the models registered under ${REGISTRY_ENV}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list"], help="what to do")


def run(args: argparse.Namespace) -> dict:
    entries = registry_entries()
    return {
        "builtin": [f"builtin:{i}" for i in range(BUILTIN_STYLES)],
        "registry": registry_root(),
        "models": [{"name": name, "versions": versions, "latest": versions[-1]}
                   for name, versions in entries.items()],
    }


def summary_line(result: dict) -> str:
    lines = [f"built-in: builtin:0 .. builtin:{len(result['builtin']) - 1} "
             "(mix them: builtin:3=0.5,12=0.5)"]
    if result["registry"] is None:
        lines.append(f"registry: ${REGISTRY_ENV} is not set")
    else:
        lines.append(f"registry {result['registry']}: {len(result['models'])} model(s)")
        lines += [f"  {m['name']:<24} {', '.join(m['versions'])} (latest {m['latest']})"
                  for m in result["models"]]
    return "\n".join(lines)
