"""The progress bar every long job shows: on stderr, so it shows with --json too without
disturbing the summary on stdout."""

from __future__ import annotations

import sys


def progress_bar(total: int | None, unit: str, desc: str, enabled: bool = True, initial: int = 0,
                 iterable=None):
    """A tqdm bar; with ``iterable`` it wraps it and counts the items as they pass."""
    from tqdm import tqdm

    return tqdm(iterable, total=total, initial=initial, unit=unit, desc=desc, file=sys.stderr,
                disable=not enabled, dynamic_ncols=True, smoothing=0.1)
