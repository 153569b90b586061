"""framestyle train: each recipe trains on Ray Train with 2 CPU workers, publishes a model the
video job uses by name; a run resumes after the command is killed (a lost worker and its node:
test_node_loss.py); bad input is one line, exit 2, nothing published."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from framestyle.core import storage
from framestyle.models import hub
from framestyle.models.transformer_net import TransformerNet
from framestyle.training.recipe import Product, Recipe
from framestyle.training.recipes import RECIPES, Entry
from helpers import kill_cli_when, run_cli
from image_zoo import photo
from media import assert_video_uses

TINY = ["--workers", "2", "--image-size", "32", "--log-every", "2"]
# One worker where a test is about what a recipe makes, not about distributed training (the
# distill test covers 2 workers, their restarts and resume): a worker fewer to start per fit.
TINY_ONE = ["--workers", "1", *TINY[2:]]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """12 small photos and one file that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(12):
        photo(64, 48, seed=i).save(folder / f"p{i:02d}.jpg", quality=92)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    return folder


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """A|B images side by side (64x32): B is A's negative."""
    folder = tmp_path_factory.mktemp("pairs")
    for i in range(8):
        a = np.asarray(photo(32, 32, seed=50 + i))
        Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(folder / f"{i}.png")
    return folder


@pytest.fixture
def hub_root(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.HUB_ENV, str(tmp_path / "hub"))
    return tmp_path / "hub"


def metrics(run_uri: str) -> list[dict]:
    uri = storage.join(run_uri, "metrics.csv")
    data = storage.storage_for(uri).get_bytes(uri)
    return list(csv.DictReader(io.StringIO(data.decode()))) if data else []


def latest_checkpoint_step(run_uri: str) -> int:
    """The step of the checkpoint Ray Train has registered last (0: none yet)."""
    uri = storage.join(run_uri, "checkpoint_manager_snapshot.json")
    data = storage.storage_for(uri).get_bytes(uri)
    latest = json.loads(data).get("latest_checkpoint_result") if data else None
    return int(latest["metrics"]["step"]) if latest else 0


def test_distill_on_s3_survives_a_killed_command(
        ray_session, photos, bucket, clips, tmp_path, capsys, monkeypatch):
    """Checkpoints on the S3 server; the command killed after its first checkpoint resumes
    there on 2 workers; the loss falls over the 30 steps; the published student is what the
    video job runs by name. (A worker lost in a running fit, its node with it, is
    test_node_loss.py's.)"""
    hub_uri = f"s3://{bucket}/train-{time.time_ns()}/models"
    monkeypatch.setenv(hub.HUB_ENV, hub_uri)
    run_uri = hub_uri.rsplit("/", 1)[0] + "/framestyle-runs/slim7"  # default: beside the hub
    argv = ["train", "distill", "--teacher", "builtin:7", "--data", photos, "--name", "slim7",
            "--steps", "30", "--width", "0.25", "--checkpoint-every", "10", *TINY]
    # the whole process group killed (Ray included) once its first checkpoint is registered
    kill_cli_when(lambda: latest_checkpoint_step(run_uri) >= 10, *argv)
    assert hub.list_models() == {}  # nothing published by the killed run

    code, out, err = run_cli(capsys, *argv, "--json")
    assert code == 0, err
    # where the killed run got to: a checkpoint upload in flight as the kill landed may still
    # have completed on the server, so read which one the run resumed at
    starts = [int(n) for n in re.findall(r"resuming slim7 at step (\d+)\n", err)]
    assert len(starts) == 1 and starts[0] in (10, 20), err
    resumed_at = starts[0]
    summary = json.loads(out)
    assert summary["steps"] == 30 and summary["resumed_from"] == resumed_at
    assert summary["worker_restarts"] == 0 and summary["workers"] == 2
    assert summary["published"] == ["slim7@1"] and summary["skipped"] == 1
    assert any(k.startswith("checkpoint_") for k in storage.storage_for(run_uri).list_files(run_uri))
    rows = metrics(run_uri)
    # the curve continues: every reported step once (rows a killed attempt wrote after its
    # checkpoint were dropped and trained again), and the loss keeps falling across resumes
    assert [int(r["step"]) for r in rows] == list(range(2, 31, 2))
    total = [float(r["total"]) for r in rows]
    # (each row is a 2-step mean over random crops: compare three rows at each end, whose
    # noise a single row's 10% margin did not always cover)
    assert np.mean(total[-3:]) < 0.93 * np.mean(total[:3]), total
    assert max(total[5:]) < total[0], total  # from step 12 on, below where the run began
    card = json.loads(storage.storage_for(hub_uri).get_bytes(f"{hub_uri}/slim7/1/model.json"))
    assert card["arch"] == "transformer_net" and card["provenance"]["recipe"] == "distill"
    assert card["provenance"]["steps"] == 30 and card["provenance"]["data"] == [str(photos)]
    assert_video_uses(["slim7"], clips["bunny"], tmp_path)


class Negative(Recipe):
    """A toy recipe, this file and one table entry: a slim TransformerNet learns x -> 1 - x."""

    batch_size = 4
    lr = 3e-3

    def build(self, prepared):
        self.nets["net"] = TransformerNet(width=0.125).to(self.device)
        self.adam("net", self.nets["net"].parameters())

    def step(self, batch):
        x = batch["a"]
        loss = torch.nn.functional.l1_loss(self.nets["net"](x * 255) / 255, 1 - x)
        self.optimizers["net"].zero_grad()
        loss.backward()
        self.optimizers["net"].step()
        return {"l1": loss.item()}

    def samples(self, batch):
        return [batch["a"]]

    @classmethod
    def products(cls, settings, options):
        return [Product("net", "transformer_net", {"width": 0.125})]


@pytest.fixture
def negative_recipe(monkeypatch):
    import sys

    import ray.cloudpickle

    monkeypatch.setitem(RECIPES, "negative", Entry(__name__, "Negative", "x -> 1 - x"))
    # Ray workers cannot import this test module (it is not installed): send it by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_every_recipe_publishes_a_model_the_video_job_uses_by_name(
        ray_session, photos, pairs, hub_root, clips, tmp_path, capsys, negative_recipe):
    """fast-style, cyclegan and pix2pix, and a recipe added as one class and one table entry."""
    style_image = tmp_path / "style.png"
    photo(40, 40, seed=99).save(style_image)
    runs = {
        "fast-style": ["--style-image", style_image, "--vgg-weights", "random",
                       "--width", "0.25"],
        "cyclegan": ["--data-b", pairs, "--ngf", "4", "--ndf", "4", "--n-blocks", "1",
                     "--pool-size", "2"],
        "pix2pix": ["--ngf", "4", "--ndf", "4"],
        "negative": [],
    }
    for recipe, options in runs.items():
        data = pairs if recipe == "pix2pix" else photos
        code, out, err = run_cli(capsys, "train", recipe, "--data", data, "--name", recipe,
                                 "--steps", "4", "--batch-size", "2", *TINY_ONE, *options,
                                 "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert summary["steps"] == 4 and all(np.isfinite(v) for v in summary["losses"].values())
        run = hub_root.parent / "framestyle-runs" / recipe
        assert (run / "loss.png").stat().st_size > 1000
        grid = Image.open(run / "samples" / "step_0000004.png")
        rows = {"cyclegan": 6, "pix2pix": 3, "fast-style": 2, "negative": 1}[recipe]
        assert grid.size == (2 * 32, rows * 32)  # inputs, outputs (and reconstructions)
    assert set(hub.list_models()) == {"fast-style", "cyclegan-a2b", "cyclegan-b2a", "pix2pix",
                                      "negative"}
    assert_video_uses(["fast-style", "cyclegan-a2b", "pix2pix", "negative"], clips["bunny"],
                      tmp_path)


# --- bad input: one line, exit 2, nothing published ---------------------------------------------

@pytest.mark.parametrize("case", ["missing", "empty", "unreadable", "no-b", "unpaired",
                                  "unknown-recipe", "no-bucket", "no-vgg", "bad-option"])
def test_bad_input_is_refused_before_training(case, photos, tmp_path, hub_root, capsys,
                                              s3_endpoint, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached VGG16 weights
    (tmp_path / "empty").mkdir()
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.jpg").write_bytes(b"\xff\xd8 truncated")
    distill = ["distill", "--teacher", "builtin:1", "--name", "x"]
    argv, message = {
        "missing": ([*distill, "--data", tmp_path / "nope"], "--data: input not found"),
        "empty": ([*distill, "--data", tmp_path / "empty"], "--data: no files found"),
        "unreadable": ([*distill, "--data", junk], "--data: no readable image"),
        "no-b": (["cyclegan", "--data", photos, "--name", "x"], "--data-b: cyclegan learns"),
        "unpaired": (["pix2pix", "--data", photos, "--name", "x"], "not an A|B pair"),
        "unknown-recipe": (["cubism", "--data", photos, "--name", "x"], "invalid choice"),
        "no-bucket": ([*distill, "--data", "s3://no-such-bucket-here/photos/"],
                      "bucket does not exist"),
        "no-vgg": (["fast-style", "--data", photos, "--name", "x", "--style-image",
                    photos / "p00.jpg"], "VGG16 ImageNet weights not found"),
        "bad-option": ([*distill, "--data", photos, "--width", "-1"], "--width"),
    }[case]
    try:
        code, _, err = run_cli(capsys, "train", *argv)
    except SystemExit as e:  # argparse's own usage errors
        code, (_, err) = e.code, capsys.readouterr()
    assert code == 2
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert not hub_root.exists() or hub.list_models() == {}


def test_distill_can_lower_its_learning_rate_to_zero_and_resume_on_the_way(tmp_path):
    """``--decay-from F``: constant for that fraction of the steps, then linearly to zero (what
    ``models prune`` fine-tunes with, from the first step); the schedule is in the checkpoint."""
    from framestyle.training.distill import Distill, Options
    from framestyle.training.settings import TrainSettings

    settings = TrainSettings(recipe="distill", data=[str(tmp_path)], name="decaying", steps=10,
                             lr=1e-3)

    def recipe(**options):
        options = Options(teacher="builtin:3", width=0.125, **options)
        return Distill(settings, options, Distill.prepare(settings, options), torch.device("cpu"))

    def rates(run, steps):
        seen = []
        for _ in range(steps):
            seen.append(run.optimizers["student"].param_groups[0]["lr"])
            run.optimizers["student"].step()  # (no gradients: only the schedule moves)
            run.advance()
        return seen

    assert rates(recipe(), 10) == [1e-3] * 10  # the default keeps it constant
    assert rates(recipe(decay_from=0.5), 10) == pytest.approx(
        [1e-3] * 5 + [1e-3, 8e-4, 6e-4, 4e-4, 2e-4])
    falling = recipe(decay_from=0)
    first = rates(falling, 4)
    resumed = recipe(decay_from=0)
    resumed.load_state_dict(falling.state_dict())
    assert first + rates(resumed, 6) == pytest.approx([1e-3 * (10 - i) / 10 for i in range(10)])
