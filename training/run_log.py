"""What a run leaves to look at in its folder: ``metrics.csv``, ``loss.png`` and sample grids.

Written by the first worker, to the run folder wherever it is (local or ``s3://``). A resumed
run keeps the rows up to the checkpoint it resumed from and drops the rest (those steps are
trained again), so the curve continues without duplicates.
"""

from __future__ import annotations

import csv
import io

import numpy as np
from PIL import Image

from ..core import storage

METRICS, PLOT, SAMPLES = "metrics.csv", "loss.png", "samples"
NOT_LOSSES = {"step", "epoch", "seconds", "skipped"}  # the other metrics.csv columns


class RunLog:
    def __init__(self, run_uri: str, resumed_step: int = 0):
        self.run_uri = run_uri
        self.rows = [r for r in read_metrics(run_uri) if int(r["step"]) <= resumed_step]

    def add(self, row: dict) -> None:
        self.rows.append(dict(row))
        fields = list(dict.fromkeys(k for r in self.rows for k in r))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(self.rows)
        _put(text.getvalue().encode(), storage.join(self.run_uri, METRICS))

    def plot(self, title: str) -> None:
        import matplotlib

        matplotlib.use("Agg")  # no display on a cluster node
        import matplotlib.pyplot as plt

        losses = [k for k in self.rows[0] if k not in NOT_LOSSES] if self.rows else []
        fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
        steps = [int(r["step"]) for r in self.rows]
        for key in losses:
            values = [float(r[key]) for r in self.rows]
            if any(v > 0 for v in values):
                ax.plot(steps, values, label=key)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (mean over the interval)")
        ax.set_title(title)
        if losses:
            ax.legend(loc="upper right", fontsize="small")
        ax.grid(alpha=0.3)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
        plt.close(fig)
        _put(buffer.getvalue(), storage.join(self.run_uri, PLOT))

    def samples(self, step: int, rows: list, columns: int = 8) -> str:
        """A grid of [0, 1] image batches (N, 3, H, W), one batch a row; returns its URI."""
        tiles = [np.concatenate([_to_uint8(img) for img in batch[:columns]], axis=1)
                 for batch in rows]
        grid = np.concatenate(tiles, axis=0)
        buffer = io.BytesIO()
        Image.fromarray(grid).save(buffer, format="PNG")
        uri = storage.join(self.run_uri, SAMPLES, f"step_{step:07d}.png")
        _put(buffer.getvalue(), uri)
        return uri


def read_metrics(run_uri: str) -> list[dict]:
    uri = storage.join(run_uri, METRICS)
    data = storage.storage_for(uri).get_bytes(uri)
    return list(csv.DictReader(io.StringIO(data.decode()))) if data else []


def _to_uint8(image) -> np.ndarray:
    array = image.detach().float().clamp(0, 1).mul(255).round().byte().permute(1, 2, 0)
    return array.cpu().numpy()


def _put(data: bytes, uri: str) -> None:
    storage.storage_for(uri).put_bytes(data, uri)
