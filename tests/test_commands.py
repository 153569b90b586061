"""framestyle image, styles sheet and models list."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from framestyle.pipeline import storage
from helpers import publish, run_cli


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


def test_models_list_shows_builtins_and_registry(tmp_path, capsys, monkeypatch):
    root = tmp_path / "models"
    publish(str(root), "candy", "1", 0.25, tmp_path)
    publish(str(root), "candy", "2", 0.25, tmp_path)
    publish(str(root), "udnie", "0.1", 0.25, tmp_path)
    monkeypatch.setenv("FRAMESTYLE_MODELS", str(root))
    code, out, _ = run_cli(capsys, "models", "list", "--json")
    result = json.loads(out)
    assert code == 0 and len(result["builtin"]) == 26
    assert result["models"] == [{"name": "candy", "versions": ["1", "2"], "latest": "2"},
                                {"name": "udnie", "versions": ["0.1"], "latest": "0.1"}]
    code, out, _ = run_cli(capsys, "models", "list")
    assert "candy" in out and "latest 2" in out
