"""Smaller, faster, steadier generators: channel pruning (models/pruning.py, the search in
training/evolution.py, the job in training/prune.py) and the ReCoNet temporal recipe
(training/temporal.py), on tiny networks and data."""

from __future__ import annotations

import json
import random

import av
import numpy as np
import pytest
import torch
from PIL import Image

from framestyle.models import architectures, hub
from framestyle.models.checkpoints import inspect, save_checkpoint
from framestyle.models.multistyle import MultiStyleNet, one_style_state
from framestyle.models.pruning import kept_channels, prune_state
from framestyle.models.transformer_net import TransformerNet
from framestyle.pipeline.flicker import warping_error
from framestyle.training import evolution
from framestyle.training.prune import psnr
from helpers import run_cli
from image_zoo import photo
from media import assert_video_uses

PRUNABLE = [("transformer_net", {"width": 0.25}),
            ("resnet_generator", {"ngf": 8, "n_blocks": 3}),
            ("resnet_generator", {"ngf": 4, "n_blocks": 2, "norm": "batch", "use_dropout": True}),
            ("one_style", {"width": 16}),
            ("multistyle", {"num_styles": 3, "width": 16})]


def _run(arch, net, x):
    return net(x, torch.ones(3) / 3) if arch.conditioned else net(x)


@pytest.mark.parametrize("name,config", PRUNABLE)
def test_pruning_removes_channels_and_keeping_all_changes_nothing(name, config, tmp_path):
    torch.manual_seed(0)
    arch = architectures.get(name)
    net = arch.build(config).eval()
    groups = arch.channel_groups(config)
    state = net.state_dict()
    x = torch.rand(2, 3, 32, 32)
    everything = {g.name: list(range(g.size)) for g in groups}
    same = arch.build(config).eval()
    same.load_state_dict(prune_state(state, groups, everything))
    assert torch.equal(_run(arch, same, x), _run(arch, net, x))

    rng = random.Random(1)
    keep = {g.name: sorted(rng.sample(range(g.size), rng.randint(1, max(1, g.size - 1))))
            for g in groups}
    small_config = {**config, "channels": kept_channels(keep)}
    small = arch.build(small_config).eval()
    small.load_state_dict(prune_state(state, groups, keep))  # strict: every shape fits
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    assert _run(arch, small, x).shape == x.shape
    # a pruned checkpoint is recognised from its shapes alone, and saved with its card
    assert arch.recognise(small.state_dict())["channels"] == small_config["channels"]
    card = save_checkpoint(small, name, small_config, tmp_path / "small")
    assert inspect(tmp_path / "small.safetensors").config == card.config == small_config


def test_a_pruned_channel_is_removed_not_zeroed():
    """Cutting a channel whose weights are zero changes nothing; cutting a live one does."""
    torch.manual_seed(0)
    net = TransformerNet(0.25).eval()
    groups = architectures.get("transformer_net").channel_groups({"width": 0.25})
    with torch.no_grad():  # conv1's channel 0 is dead: nothing reads it
        net.conv2.conv2d.weight[:, 0] = 0
    x = torch.rand(1, 3, 32, 32) * 255
    keep = {"conv1": list(range(1, 8))}
    small = TransformerNet(0.25, channels={"conv1": 7}).eval()
    small.load_state_dict(prune_state(net.state_dict(), groups, keep))
    assert torch.allclose(small(x), net(x), atol=1e-3)
    small.load_state_dict(prune_state(net.state_dict(), groups, {"conv1": list(range(7))}))
    assert not torch.allclose(small(x), net(x), atol=1e-1)


def test_one_style_network_is_the_builtin_style():
    ref = hub.resolve("builtin:7=0.7,3=0.3")
    multi = hub.load(ref)
    one = architectures.get("one_style")
    state = one_style_state(multi.state_dict(), ref.condition)
    single = one.build(one.recognise(state)).eval()
    single.load_state_dict(state)
    x = torch.rand(1, 3, 64, 64)
    assert torch.allclose(single(x), multi(x, torch.tensor(ref.condition)), atol=1e-5)
    assert isinstance(multi, MultiStyleNet)


def test_the_search_never_loses_its_best_and_resumes_exactly():
    sizes = [8, 16, 4]
    target = np.zeros(28, bool)
    target[[0, 9, 10, 24]] = True

    def score(codes):  # fewest channels, the target ones kept
        return [{"fitness": float(c.sum() + 10 * (target & ~c).sum()), "error": 0.0,
                 "params": int(c.sum()), "macs": 0} for c in codes]

    state = evolution.start(sizes, 12, seed=3)
    assert all(np.asarray(c, bool)[o:o + s].any() for c in state.population
               for o, s in ((0, 8), (8, 16), (24, 4)))  # every group keeps a channel
    bests = []
    for g in range(6):
        if g == 3:  # stop and resume from JSON
            state = evolution.SearchState(**json.loads(json.dumps(state.to_json())))
        bests.append(evolution.run_generation(state, sizes, score, 0.2, 0.5, 0.05)["fitness"])
    assert bests == sorted(bests, reverse=True) and bests[-1] < bests[0]
    again = evolution.start(sizes, 12, seed=3)
    for _ in range(6):
        evolution.run_generation(again, sizes, score, 0.2, 0.5, 0.05)
    assert again.best == state.best and again.table == state.table
    kept = evolution.split(state.best["code"], ["a", "b", "c"], sizes)
    assert set(kept) == {"a", "b", "c"} and all(kept.values())


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("content")
    for i in range(6):
        photo(48, 40, seed=200 + i).save(folder / f"c{i}.png")
    return folder


@pytest.fixture
def hub_root(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.HUB_ENV, str(tmp_path / "hub"))
    return tmp_path / "hub"


def lively_transformer_net(path, seed: int = 0):
    """A random TransformerNet whose output is a lively picture around mid-grey (a random one's
    is nearly black): something to prune, and something that flickers with noise."""
    torch.manual_seed(seed)
    net = TransformerNet(0.25).eval()
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(60)
        net.deconv3.conv2d.bias.fill_(128)
    save_checkpoint(net, "transformer_net", {"width": 0.25}, path)
    return net, path.with_suffix(".safetensors")


def test_prune_publishes_a_smaller_network_close_to_its_parent_that_the_video_job_uses(
        ray_session, photos, hub_root, clips, tmp_path, capsys):
    parent, checkpoint = lively_transformer_net(tmp_path / "parent")
    argv = ["models", "prune", checkpoint, "lite", "--data", photos, "--error", "pixel",
            "--population", "6", "--generations", "3", "--gamma", "0.5", "--image-size", "32",
            "--eval-images", "4", "--finetune-steps", "20", "--workers", "1", "--json"]
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    result = json.loads(out)
    assert [row["generation"] for row in result["generations"]] == [1, 2, 3]
    parent_params = sum(p.numel() for p in parent.parameters())
    assert result["parent_params"] == parent_params and result["params"] < 0.9 * parent_params
    lite = hub.resolve("lite")
    assert lite.arch.name == "transformer_net" and lite.config["channels"] == result["channels"]
    card = json.loads((hub_root / "lite" / "1" / "model.json").read_text())["provenance"]
    assert card["pruned_from"]["sha256"] == inspect(checkpoint).sha256
    assert card["code"] and card["fps"] > 0 and card["psnr_db"] == result["psnr_db"]
    assert card["recipe"] == "distill" and card["steps"] == 20  # fine-tuned on Ray Train
    assert card["options"]["decay_from"] == 0  # its learning rate falling from the first step
    # close to the parent on photos it never saw
    held_out = torch.stack([torch.from_numpy(np.asarray(photo(64, 64, seed=900 + i)))
                            for i in range(3)]).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        assert psnr(hub.load(lite)(held_out) / 255, parent(held_out) / 255) > 15
    assert_video_uses(["lite"], clips["bunny"], tmp_path)
    # the same command again: nothing searched, trained or published anew
    code, out, err = run_cli(capsys, *argv)
    assert code == 0 and json.loads(out)["already_published"], err
    assert hub.list_models() == {"lite": ["1"]}


def test_prune_a_builtin_style_one_at_a_time_and_go_on_searching(ray_session, photos, hub_root,
                                                                  capsys):
    argv = ["models", "prune", "builtin:7", "seven-lite", "--data", photos, "--error",
            "perceptual", "--vgg-weights", "random", "--cost", "macs", "--population", "4",
            "--image-size", "32", "--eval-images", "2", "--finetune-steps", "0", "--json"]
    code, out, err = run_cli(capsys, *argv, "--generations", "1")
    assert code == 0, err
    first = json.loads(out)
    assert first["arch"] == "one_style" and set(first["channels"]) >= {"contract0", "stream"}
    ref = hub.resolve("seven-lite")
    assert ref.arch.name == "one_style" and ref.condition is None  # a style of its own
    # more generations later: the saved search goes on from where it stopped
    code, out, err = run_cli(capsys, *argv, "--generations", "2")
    assert code == 0 and "resuming the search of seven-lite at generation 1" in err, err
    second = json.loads(out)
    assert second["generations"][0] == first["generations"][0]
    assert second["generations"][1]["fitness"] <= first["generations"][0]["fitness"]
    assert hub.list_models() == {"seven-lite": ["1", "2"]}


def test_prune_a_cyclegan_generator_scored_by_its_discriminator(ray_session, photos, hub_root,
                                                                tmp_path, capsys):
    from framestyle.models.cycle_gan import NLayerDiscriminator, ResnetGenerator

    torch.manual_seed(0)
    generator, critic = tmp_path / "latest_net_G_A.pth", tmp_path / "latest_net_D_A.pth"
    torch.save(ResnetGenerator(ngf=8, n_blocks=2).state_dict(), generator)
    torch.save(NLayerDiscriminator(ndf=8, n_layers=2).state_dict(), critic)
    code, out, err = run_cli(capsys, "models", "prune", generator, "horse-lite", "--data", photos,
                             "--error", "pixel", "--discriminator", critic,
                             "--adversarial-weight", "0.5", "--gamma", "5", "--population", "4",
                             "--generations", "1", "--image-size", "32", "--eval-images", "2",
                             "--finetune-steps", "0", "--json")
    assert code == 0, err
    result = json.loads(out)
    best = result["generations"][0]
    assert best["adversarial"] > 0  # the critic's score is part of the fitness
    assert best["fitness"] > best["error"] + 0.5 * best["adversarial"] - 1e-9
    assert result["arch"] == "resnet_generator" and result["params"] < result["parent_params"]


@pytest.mark.parametrize("case", ["unprunable", "no-vgg", "probabilities", "no-data",
                                  "critic-for-builtin"])
def test_bad_prune_input_is_one_line_and_publishes_nothing(case, photos, hub_root, tmp_path,
                                                           capsys, monkeypatch):
    from framestyle.models.pix2pix import UnetGenerator

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no cached VGG16 weights
    unet = tmp_path / "unet.pth"
    torch.save(UnetGenerator(3, 3, 5, ngf=4).state_dict(), unet)
    base = ["models", "prune", "builtin:1", "x", "--data", photos, "--error", "pixel"]
    argv, message = {
        "unprunable": (["models", "prune", unet, "x", "--data", photos],
                       "unet_generator networks cannot be pruned"),
        "no-vgg": (["models", "prune", "builtin:1", "x", "--data", photos],
                   "or score codes by --error pixel"),
        "probabilities": ([*base, "--s1", "0.6", "--s2", "0.6"], "must not exceed 1"),
        "critic-for-builtin": ([*base, "--discriminator", unet], "scores GAN generators"),
        "no-data": (["models", "prune", "builtin:1", "x", "--error", "pixel", "--data",
                     tmp_path / "nope"],
                    "--data: input not found"),
    }[case]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not hub_root.exists() or hub.list_models() == {}


def moving_clip(path, frames: int = 30, size=(128, 96), step: int = 2, noise: float = 8.0,
                seed: int = 0):
    """A texture panning 2 px a frame with fresh sensor noise on every frame: what makes a
    per-frame network flicker."""
    rng = np.random.default_rng(seed)
    w, h = size
    texture = rng.integers(0, 255, (12, 24, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(texture).resize((w + frames * step, h), Image.BICUBIC),
                      np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "12"}
        for t in range(frames):
            frame = base[:, t * step:t * step + w] + rng.normal(0, noise, (h, w, 3))
            image = av.VideoFrame.from_ndarray(np.clip(frame, 0, 255).astype(np.uint8), "rgb24")
            for packet in stream.encode(image):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_video_pairs_from_an_archive_in_s3_are_consecutive_frames_with_their_flow(
        bucket, tmp_path):
    """The temporal recipe's two data stages, on a .tar of clips in S3: every row is a pair of
    consecutive frames (frame t+1 is frame t moved along the row's flow), the flow is the
    clip's motion (2 px a frame), and a member that is no video is one invalid row."""
    import tarfile

    from framestyle.core import storage
    from framestyle.pipeline.image_source import resolve_sources
    from framestyle.pipeline.temporal import warp
    from framestyle.training.data import Augment
    from framestyle.training.video_pairs import pair_rows, with_flow

    moving_clip(tmp_path / "pan.mp4", noise=0)
    (tmp_path / "readme.mp4").write_text("not a video")
    with tarfile.open(tmp_path / "clips.tar", "w") as tar:
        tar.add(tmp_path / "pan.mp4", "clips/pan.mp4")
        tar.add(tmp_path / "readme.mp4", "clips/readme.mp4")
    uri = f"s3://{bucket}/temporal/clips.tar"
    storage.storage_for(uri).upload(str(tmp_path / "clips.tar"), uri)
    [unit] = resolve_sources([uri])
    rows = [with_flow(row, "dis") for row in pair_rows(unit.to_row(), Augment(64, 1.25, True),
                                                        pairs=6, gap=1)]
    assert [row["valid"] for row in rows] == [True] * 6 + [False]
    assert "readme.mp4: not a video" in rows[-1]["source"]
    for row in rows[:6]:
        first, second = row["image"][..., :3], row["image"][..., 3:]
        assert row["image"].shape == (64, 64, 6) and row["flow"].shape == (64, 64, 2)
        visible = row["mask"][..., 0] > 0
        assert visible.mean() > 0.5
        # 2 px a frame, scaled by 1.25 * 64 / 96 to the crop; leftwards or, flipped, rightwards
        assert abs(abs(np.median(row["flow"][..., 0][visible])) - 2 * 80 / 96) < 0.5
        assert abs(np.median(row["flow"][..., 1][visible])) < 0.3
        moved = warp(first, row["flow"])
        error = np.abs(moved.astype(float) - second)[visible].mean()
        assert error < 0.25 * np.abs(first.astype(float) - second)[visible].mean(), error


def test_temporal_recipe_lowers_the_warping_error_of_its_own_outputs(
        ray_session, hub_root, tmp_path, capsys):
    (tmp_path / "clips").mkdir()
    moving_clip(tmp_path / "clips" / "train.mp4")
    (tmp_path / "clips" / "notes.mp4").write_text("not a video")  # reported, never fatal
    test_clip = moving_clip(tmp_path / "test.mp4", seed=1)
    _, start = lively_transformer_net(tmp_path / "start")
    code, out, err = run_cli(capsys, "train", "temporal", "--init", start, "--data",
                             tmp_path / "clips", "--name", "steady", "--steps", "40",
                             "--image-size", "64", "--batch-size", "4", "--workers", "1",
                             "--log-every", "10", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["published"] == ["steady@1"] and summary["skipped"] == 1
    frames = [f.to_ndarray(format="rgb24") for f in av.open(str(test_clip)).decode(video=0)]

    def stylized(style):
        net = hub.load(hub.resolve(style))
        with torch.no_grad():
            return [net(torch.from_numpy(f).permute(2, 0, 1)[None].float()).clamp(0, 255)[0]
                    .permute(1, 2, 0).numpy().astype(np.uint8) for f in frames]

    before, after = stylized(str(start)), stylized("steady")
    e_before = warping_error(frames, before).warping_error
    e_after = warping_error(frames, after).warping_error
    assert e_after < 0.6 * e_before, (e_before, e_after)
    print(f"E_warp {e_before:.4f} -> {e_after:.4f}, std {np.std(before):.1f} -> {np.std(after):.1f}")
    assert np.std(after) > 0.7 * np.std(before)  # steadier, not flattened
