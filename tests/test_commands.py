"""framestyle image, styles sheet, models list and publish, and --help."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
from PIL import Image

from framestyle.core import storage
from helpers import publish, run_cli, seeded


def photo(path, size=(96, 64), exif_orientation=None):
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[:, : size[0] // 2] = (250, 20, 20)  # left half red
    image = Image.fromarray(pixels)
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        image.save(path, exif=exif)
    else:
        image.save(path)
    return path


def test_image_applies_exif_rotation_and_writes_the_asked_format(tmp_path, capsys):
    src = photo(tmp_path / "phone.jpg", exif_orientation=6)  # stored sideways: rotate 90° CW
    code, out, err = run_cli(capsys, "image", src, tmp_path / "out.webp", "--style", "builtin:2",
                             "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["width"], result["height"]) == (64, 96)
    with Image.open(tmp_path / "out.webp") as img:
        assert img.format == "WEBP" and img.size == (64, 96)


def test_image_on_s3_and_bad_images(bucket, tmp_path, capsys):
    src = f"s3://{bucket}/photos/a.png"
    storage.S3Storage().upload(str(photo(tmp_path / "a.png")), src)
    dst = f"s3://{bucket}/styled/a.png"
    code, _, err = run_cli(capsys, "image", src, dst, "--style", "builtin:4", "--max-side", "48")
    assert code == 0, err
    local = tmp_path / "back.png"
    storage.S3Storage().download(dst, str(local))
    assert Image.open(local).size == (48, 32)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, out, err = run_cli(capsys, "image", broken, tmp_path / "x.png", "--style", "builtin:1")
    assert code == 2 and "not a readable image" in err and not (tmp_path / "x.png").exists()
    code, out, err = run_cli(capsys, "image", tmp_path / "a.png", tmp_path / "x.nope",
                             "--style", "builtin:1")
    assert code == 2 and "image format" in err


def test_styles_sheet_shows_every_builtin_style(tmp_path, capsys):
    code, out, err = run_cli(capsys, "styles", "sheet", photo(tmp_path / "p.png"),
                             tmp_path / "sheet.png", "--tile", "48", "--columns", "9", "--json")
    assert code == 0, err
    assert json.loads(out)["styles"] == 26
    sheet = np.asarray(Image.open(tmp_path / "sheet.png"))
    assert sheet.shape == (3 * (32 + 18), 9 * 48, 3)  # 27 tiles: original + 26 styles
    tiles = [sheet[18:50, x * 48:(x + 1) * 48] for x in range(1, 4)]
    assert not np.array_equal(tiles[0], tiles[1]) and not np.array_equal(tiles[1], tiles[2])


def test_models_list_shows_builtins_and_hub_models(tmp_path, capsys, monkeypatch):
    root = tmp_path / "models"
    publish(str(root), "candy", "1", 0.25)
    publish(str(root), "candy", "2", 0.25)
    publish(str(root), "udnie", "0.1", 0.25)
    monkeypatch.setenv("FRAMESTYLE_MODELS", str(root))
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    result = json.loads(out)
    assert code == 0 and len(result["builtin"]) == 26
    assert {"transformer_net", "resnet_generator", "unet_generator"} <= set(
        result["architectures"])
    assert result["models"] == [{"name": "candy", "versions": ["1", "2"], "latest": "2"},
                                {"name": "udnie", "versions": ["0.1"], "latest": "0.1"}]
    code, out, _ = run_cli(capsys, "models", "list")
    assert "candy" in out and "latest 2" in out


def test_help_answers_without_importing_torch_or_ray():
    """`--help` of the command and every subcommand: argparse alone, no torch, no Ray."""
    script = """
import sys
from framestyle.jobs.cli import JOBS, main
for argv in [["--help"]] + [[name, "--help"] for name in JOBS]:
    try:
        main(argv)
    except SystemExit as e:
        assert e.code == 0, argv
print(sorted(m for m in ("torch", "ray") if m in sys.modules))
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"
    assert "usage: framestyle models" in proc.stdout and "publish" in proc.stdout


def test_models_publish_versions_an_immutable_hub(tmp_path, capsys, monkeypatch):
    import torch

    from framestyle.models.transformer_net import TransformerNet

    hub_root = tmp_path / "hub"
    monkeypatch.setenv("FRAMESTYLE_MODELS", str(hub_root))
    checkpoint = tmp_path / "mosaic.pth"
    torch.save(seeded(TransformerNet(width=0.25)).state_dict(), checkpoint)
    versions = []
    for extra in ([], [], ["--version", "2024-06"]):
        code, out, err = run_cli(capsys, "models", "publish", checkpoint, "mosaic", *extra,
                                 "--json")
        assert code == 0, err
        card = json.loads(out)
        versions.append(card["version"])
        assert card["arch"] == "transformer_net" and card["config"] == {"width": 0.25}
        assert card["provenance"]["source"] == str(checkpoint)
    assert versions == ["1", "2", "2024-06"]
    code, out, err = run_cli(capsys, "models", "publish", checkpoint, "mosaic", "--version", "2")
    assert code == 2 and "immutable" in err and out == ""
    # the published card's hash is what loading checks, and the name works as a style
    stored = json.loads((hub_root / "mosaic" / "1" / "model.json").read_text())
    assert stored["sha256"] == hashlib.sha256(
        (hub_root / "mosaic" / "1" / "model.safetensors").read_bytes()).hexdigest()
    photo_path = photo(tmp_path / "p.png")
    code, _, err = run_cli(capsys, "image", photo_path, tmp_path / "s1.png", "--style", "mosaic@1")
    assert code == 0, err
    code, _, err = run_cli(capsys, "image", photo_path, tmp_path / "s2.png", "--style",
                           str(checkpoint))
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "s1.png")),
                          np.asarray(Image.open(tmp_path / "s2.png")))


def test_a_second_demo_says_its_output_was_made_before_not_a_rate_of_zero():
    from framestyle.jobs import demo

    done = {"frames_out": 132, "seconds": 10.5, "fps": 12.57, "status": "done",
            "output": "out/demo/x.mp4", "preview": "out/demo/x.png"}
    assert demo.summary_line(done).startswith("132 frames, 10.5 s, 12.57 frames/s -> ")
    again = {**done, "seconds": 0.1, "fps": 0.0, "status": "skipped"}
    line = demo.summary_line(again)
    assert "earlier run" in line and "frames/s" not in line and line.endswith("x.png)")
