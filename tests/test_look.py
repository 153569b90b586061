"""--strength and --preserve-color (``pipeline/look.py``): what they do to pixels, on every
network, through every command, and that a job made with them is not mistaken for one without."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from framestyle.models.checkpoints import save_checkpoint
from framestyle.models.cycle_gan import ResnetGenerator
from framestyle.models.transformer_net import TransformerNet
from framestyle.pipeline.look import apply_look
from framestyle.pipeline.style_image import resolve_style
from framestyle.pipeline.stylize import Stylizer
from helpers import run_cli
from image_zoo import photo
from media import decoded_frames, frame_errors


def ycrcb(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(int)


def test_strength_blends_and_preserve_color_keeps_the_inputs_chroma():
    original = np.asarray(photo(64, 48, seed=1))
    stylized = np.ascontiguousarray(255 - np.asarray(photo(64, 48, seed=2))[::-1])
    assert np.array_equal(apply_look(original, stylized), stylized)
    assert np.array_equal(apply_look(original, stylized, strength=0), original)
    half = apply_look(original, stylized, strength=0.5).astype(int)
    assert np.abs(half - (original.astype(int) + stylized) / 2).max() <= 0.5
    kept_rgb = apply_look(original, stylized, preserve_color=True)
    kept = ycrcb(kept_rgb)
    # luma from the stylization, chroma from the input, up to YCrCb's rounding, where the
    # pair is a colour RGB can show (elsewhere RGB is clipped)
    inside = ((kept_rgb > 0) & (kept_rgb < 255)).all(axis=2)
    assert inside.mean() > 0.5
    assert np.abs(kept[..., 0] - ycrcb(stylized)[..., 0])[inside].mean() < 2
    assert np.abs(kept[..., 1:] - ycrcb(original)[..., 1:])[inside].mean() < 2
    assert np.abs(kept[..., 1:] - ycrcb(stylized)[..., 1:])[inside].mean() > 20


def test_a_distilled_student_learns_the_look_the_command_would_give(tmp_path):
    """``train distill --teacher builtin:3 --strength 0.6 --preserve-color``: the target the
    student is trained on is what ``framestyle image`` with those flags makes of the picture
    (the tensor form of the look against the uint8 one, and the teacher in PyTorch against the
    stylizer in onnxruntime: a level or two)."""
    import torch

    from framestyle.training.distill import Distill, Options
    from framestyle.training.settings import TrainSettings

    picture = np.asarray(photo(72, 56, seed=7))
    x = torch.from_numpy(picture).permute(2, 0, 1)[None].float() / 255
    for strength, preserve_color in ((0.6, True), (1.0, True), (0.3, False)):
        options = Options(teacher="builtin:3", width=0.25, strength=strength,
                          preserve_color=preserve_color)
        settings = TrainSettings(recipe="distill", data=[str(tmp_path)], name="looked")
        recipe = Distill(settings, options, Distill.prepare(settings, options),
                         torch.device("cpu"))
        with torch.no_grad():
            target = (recipe.teacher(x)[0].permute(1, 2, 0) * 255).round().numpy()
        command = Stylizer(resolve_style("builtin:3", strength=strength,
                                         preserve_color=preserve_color))([picture])[0]
        difference = np.abs(target - command)
        assert difference.mean() < 0.6 and np.percentile(difference, 99) <= 2
    plain = Stylizer(resolve_style("builtin:3"))([picture])[0]
    assert np.abs(target - plain).mean() > 10  # the last look is not the plain style


@pytest.fixture(scope="module")
def styles(tmp_path_factory) -> dict[str, str]:
    """One style per kind of network: the built-in, a picture, a TransformerNet and a
    CycleGAN generator (random weights: what matters is the plumbing, not the art)."""
    import torch

    folder = tmp_path_factory.mktemp("look-styles")
    torch.manual_seed(0)
    save_checkpoint(TransformerNet(width=0.25), "transformer_net", {"width": 0.25},
                    folder / "tnet.safetensors")
    save_checkpoint(ResnetGenerator(ngf=8, n_blocks=2), "resnet_generator",
                    {"ngf": 8, "n_blocks": 2}, folder / "cyclegan.safetensors")
    photo(96, 96, seed=5).save(folder / "painting.png")
    return {"builtin": "builtin:3", "image": f"image:{folder / 'painting.png'}",
            "transformer_net": str(folder / "tnet.safetensors"),
            "resnet_generator": str(folder / "cyclegan.safetensors")}


@pytest.mark.parametrize("kind", ["builtin", "image", "transformer_net", "resnet_generator"])
def test_every_network_gets_the_look_after_it_and_a_job_id_of_its_own(kind, styles):
    frame = np.asarray(photo(80, 48, seed=9))
    plain = resolve_style(styles[kind])
    looked = resolve_style(styles[kind], strength=0.4, preserve_color=True)
    expected = apply_look(frame, Stylizer(plain)([frame])[0], 0.4, True)
    assert np.abs(Stylizer(looked)([frame])[0].astype(int) - expected).max() <= 1
    assert looked.identity != plain.identity  # never resumed from chunks made without it
    assert resolve_style(styles[kind], strength=1).identity == plain.identity


def test_image_images_and_the_sheet_take_the_look(ray_session, tmp_path, capsys):
    source = tmp_path / "in"
    source.mkdir()
    for i in range(3):
        photo(64, 48, seed=20 + i).save(source / f"p{i}.png")
    frame = np.asarray(Image.open(source / "p0.png").convert("RGB"))
    expected = apply_look(frame, Stylizer(resolve_style("builtin:7"))([frame])[0], 0.3, True)
    look = ["--strength", "0.3", "--preserve-color"]
    code, _, err = run_cli(capsys, "image", source / "p0.png", tmp_path / "one.png",
                           "--style", "builtin:7", *look)
    assert code == 0, err
    code, _, err = run_cli(capsys, "images", source, tmp_path / "many", "--style", "builtin:7",
                           *look)
    assert code == 0, err
    for written in (tmp_path / "one.png", tmp_path / "many" / "p0.png"):
        assert np.abs(np.asarray(Image.open(written)).astype(int) - expected).max() <= 1
    # strength 0 is the input itself: every tile of the sheet is the original's
    code, out, err = run_cli(capsys, "styles", "sheet", source / "p0.png", tmp_path / "s.png",
                             "--tile", "64", "--columns", "27", "--strength", "0", "--json")
    assert code == 0 and json.loads(out)["styles"] == 26, err
    sheet = np.asarray(Image.open(tmp_path / "s.png").convert("RGB")).astype(int)
    tiles = [sheet[18:66, x * 64:(x + 1) * 64] for x in range(27)]
    assert max(np.abs(t - tiles[0]).max() for t in tiles) <= 1
    with pytest.raises(SystemExit) as refused:  # argparse's own one-line usage error
        run_cli(capsys, "image", source / "p0.png", tmp_path / "x.png", "--style", "builtin:7",
                "--strength", "1.5")
    err = capsys.readouterr().err
    assert refused.value.code == 2 and "--strength: expected a number from 0 to 1" in err
    assert not (tmp_path / "x.png").exists()


def test_a_video_gets_the_look_on_every_frame(ray_session, clips, tmp_path, capsys):
    out = tmp_path / "looked.mp4"
    code, _, err = run_cli(capsys, "video", clips["bunny"], out, "--style", "builtin:7",
                           "--strength", "0.6", "--preserve-color", "--temporal", "0",
                           "--crf", "10")
    assert code == 0, err
    frames = decoded_frames(clips["bunny"])
    stylized = Stylizer(resolve_style("builtin:7"))(frames)
    expected = [apply_look(f, s, 0.6, True) for f, s in zip(frames, stylized)]
    errors = frame_errors(decoded_frames(out), expected)
    assert errors.max() < 4, errors  # H.264 at CRF 10, 4:2:0
    assert errors.max() < 0.5 * frame_errors(stylized, expected).min()
