"""Speed, memory and quality measurements; ``python -m benchmarks all`` runs them all."""

from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "FRAMESTYLE_BENCHMARK_RESULTS"


def results_dir() -> Path:
    """Where benchmarks write their JSON, tables and plots: benchmarks/results, or the folder
    ``python -m benchmarks all --results DIR`` names (a --quick run keeps its own)."""
    return Path(os.environ.get(RESULTS_ENV) or Path(__file__).parent / "results")
