"""Image decoding, output naming and archive-member safety, without Ray."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from image_zoo import decompression_bomb_png, encoded, exif_rotated_jpeg, photo, sixteen_bit_png

from framestyle.pipeline.image_decode import ImageError, decode_image
from framestyle.pipeline.image_encode import encode_image, output_format
from framestyle.pipeline.image_source import archive_kind, glob_regex, safe_key


@pytest.mark.parametrize("name, key", [
    ("a/b.jpg", "a/b.jpg"), ("./a//b.jpg", "a/b.jpg"), ("../b.jpg", None), ("a/../../b", None),
    ("/etc/x.png", None), ("C:/x.png", None), ("a\\..\\..\\x.png", None), ("", None),
])
def test_safe_key_refuses_paths_that_leave_the_destination(name, key):
    assert safe_key(name) == key


@pytest.mark.parametrize("name, choice, expected", [
    ("a/b.jpeg", "same", ("JPEG", "a/b.jpeg")), ("a/b.JPG", "png", ("PNG", "a/b.png")),
    ("scan.tif", "same", ("TIFF", "scan.tif")), ("raw.psd", "same", ("PNG", "raw.psd.png")),
    ("noext", "webp", ("WEBP", "noext.webp")),
])
def test_output_names(name, choice, expected):
    assert output_format(name, choice) == expected


@pytest.mark.parametrize("pattern, key, matches", [
    ("s3://b/p/*.jpg", "s3://b/p/a.jpg", True), ("s3://b/p/*.jpg", "s3://b/p/x/a.jpg", False),
    ("s3://b/p/**/*.jpg", "s3://b/p/a.jpg", True), ("s3://b/p/**/*.jpg", "s3://b/p/x/y/a.jpg",
                                                       True),
    ("s3://b/p/?.png", "s3://b/p/ab.png", False), ("s3://b/p/[ab].png", "s3://b/p/b.png", True),
    ("s3://b/p/[!ab].png", "s3://b/p/a.png", False), ("s3://b/p+1/*", "s3://b/p+1/x", True),
])
def test_s3_globs_match_like_the_shell(pattern, key, matches):
    assert bool(glob_regex(pattern).fullmatch(key)) == matches


def test_archive_kinds():
    assert [archive_kind(n) for n in ("a.tar", "a.TAR.GZ", "a.tgz", "a.zip", "a.tar.bz2")] == \
        ["tar", "tar", "tar", "zip", None]


def test_sixteen_bit_is_scaled_not_clipped():
    gray = decode_image(sixteen_bit_png(32, 8)).rgb[..., 0]
    assert gray.min() == 0 and gray.max() == 255 and 100 < gray.mean() < 155


def test_exif_orientation_and_max_side():
    assert decode_image(exif_rotated_jpeg(32, 16)).rgb.shape == (32, 16, 3)
    assert decode_image(encoded(photo(400, 100, 0), "JPEG"), max_side=100).rgb.shape == \
        (25, 100, 3)


def test_decompression_bomb_is_refused_from_the_header():
    with pytest.raises(ImageError, match="decompression bomb"):
        decode_image(decompression_bomb_png())


def test_alpha_goes_back_where_the_format_can_hold_it():
    rgba = photo(8, 8, 0, "RGBA")
    decoded = decode_image(encoded(rgba, "PNG"))
    assert decoded.alpha is None  # fully opaque: no plane to carry
    alpha = np.full((8, 8), 128, np.uint8)
    assert Image.open(io.BytesIO(encode_image([decoded.rgb], "PNG", [alpha]))).mode == "RGBA"
    assert Image.open(io.BytesIO(encode_image([decoded.rgb], "JPEG", [alpha]))).mode == "RGB"


def test_a_killed_write_is_neither_finished_nor_kept(tmp_path):
    from framestyle.pipeline.image_sink import Destination

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "done.png").write_bytes(b"x")
    (tmp_path / "a" / ".half.png.1234abcd.partial").write_bytes(b"y")
    assert Destination.parse(str(tmp_path)).prepare(overwrite=False) == {"a/done.png": 1}
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["done.png"]
