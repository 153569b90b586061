"""Images as people have them, on the moto S3 server: one write path for `image` and `images`,
metadata kept (or stripped), HEIC, AVIF and animations, and resume that knows which job made
DST's images."""

from __future__ import annotations

import io
import json

import numpy as np
from conftest import BUCKET
from helpers import run_cli
from image_zoo import encoded, photo, tar_bytes
from PIL import Image, ImageSequence

from framestyle.core import storage
from framestyle.models.hub import resolve
from framestyle.pipeline.stylize import Stylizer

STYLE = "builtin:7"
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
DATE_TAKEN, LENS = 0x9003, 0xA434
XMP = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
       b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
       b'xmlns:dc="http://purl.org/dc/elements/1.1/" tiff:Orientation="6" dc:creator="Ada"/>'
       b'</rdf:RDF></x:xmpmeta>')


def s3(key: str) -> str:
    return f"s3://{BUCKET}/{key}"


def put(key: str, data: bytes) -> None:
    storage.S3Storage().put_bytes(data, s3(key))


def get(key: str) -> bytes:
    return storage.S3Storage().get_bytes(s3(key))


def opened(key: str) -> Image.Image:
    return Image.open(io.BytesIO(get(key)))


def camera_jpeg(seed: int, taken: str, size=(40, 24)) -> bytes:
    """A phone photo: stored sideways with EXIF orientation 6, capture date, camera, lens, GPS,
    and an XMP packet."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "EOS R5", 6
    exif.get_ifd(EXIF_IFD).update({DATE_TAKEN: taken, LENS: "RF 50mm F1.8"})
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 22.0, 1.5)})
    return encoded(photo(*size, seed), "JPEG", exif=exif.tobytes(), xmp=XMP)


def animation(fmt: str, frames: int = 5, size=(36, 28)) -> bytes:
    """A moving square over a gradient: frame i differs from frame i-1 by motion."""
    images = []
    for i in range(frames):
        pixels = np.tile(np.linspace(0, 255, size[0], dtype=np.uint8)[None, :, None],
                         (size[1], 1, 3))
        pixels[8:18, 4 + 4 * i:14 + 4 * i] = (230, 40, 40)
        images.append(Image.fromarray(pixels))
    buffer = io.BytesIO()
    images[0].save(buffer, format=fmt, save_all=True, append_images=images[1:],
                   duration=[80, 120, 160, 200, 240][:frames], loop=3)
    return buffer.getvalue()


def test_image_and_images_write_identical_bytes(ray_session, capsys):
    """One write path: the same photo through `image` and through `images` gives the same
    bytes, for a JPEG with EXIF and XMP, a PNG with alpha, a HEIC and an AVIF."""
    rgba = photo(30, 22, 3, "RGBA")
    rgba.putalpha(Image.fromarray(np.tile(np.arange(30, dtype=np.uint8)[None] * 8, (22, 1))))
    sources = {"a.jpg": camera_jpeg(1, "2021:05:01 10:00:00"), "b.png": encoded(rgba, "PNG"),
               "c.heic": encoded(photo(26, 34, 4), "HEIF"),
               "d.avif": encoded(photo(34, 18, 5), "AVIF"), "e.gif": animation("GIF")}
    for name, data in sources.items():
        put(f"same-in/{name}", data)
    code, _, err = run_cli(capsys, "images", s3("same-in/"), s3("same-many/"), "--style", STYLE)
    assert code == 0, err
    for name in sources:
        code, _, err = run_cli(capsys, "image", s3(f"same-in/{name}"), s3(f"same-one/{name}"),
                               "--style", STYLE)
        assert code == 0, err
        assert get(f"same-one/{name}") == get(f"same-many/{name}"), name
    assert opened("same-one/b.png").mode == "RGBA"  # alpha put back
    assert (opened("same-one/c.heic").format, opened("same-one/d.avif").format) == ("HEIF",
                                                                                      "AVIF")


def test_metadata_survives_and_strip_metadata_drops_it(ray_session, capsys):
    dates = ["2019:12:31 23:59:59", "2021:01:02 08:00:00", "2020:06:15 12:30:00"]
    for i, taken in enumerate(dates):
        put(f"meta-in/p{i}.jpg", camera_jpeg(10 + i, taken))
    code, _, err = run_cli(capsys, "images", s3("meta-in/"), s3("meta-kept/"), "--style", STYLE,
                           "--format", "webp")
    assert code == 0, err
    taken_out = {}
    for i in range(3):
        out = opened(f"meta-kept/p{i}.webp")
        exif = out.getexif()
        assert out.size == (24, 40)  # upright, and the orientation says so
        assert exif[0x0112] == 1 and (exif[0x010F], exif[0x0110]) == ("Canon", "EOS R5")
        assert exif.get_ifd(EXIF_IFD)[LENS] == "RF 50mm F1.8"
        assert exif.get_ifd(GPS_IFD)[1] == "N"
        assert b'dc:creator="Ada"' in out.info["xmp"] and b'Orientation="1"' in out.info["xmp"]
        taken_out[f"p{i}"] = exif.get_ifd(EXIF_IFD)[DATE_TAKEN]
    assert taken_out == {f"p{i}": d for i, d in enumerate(dates)}
    # a library sorted by capture date stays sorted
    assert sorted(taken_out, key=taken_out.get) == ["p0", "p2", "p1"]

    code, _, err = run_cli(capsys, "images", s3("meta-in/"), s3("meta-stripped/"), "--style",
                           STYLE, "--strip-metadata")
    assert code == 0, err
    for i in range(3):
        out = opened(f"meta-stripped/p{i}.jpg")
        assert len(out.getexif()) == 0 and "xmp" not in out.info and out.size == (24, 40)


def test_heic_and_avif_in_and_out(ray_session, capsys):
    put("fmt-in/phone.heic", encoded(photo(40, 30, 7), "HEIF"))
    put("fmt-in/web.avif", encoded(photo(30, 40, 8), "AVIF"))
    put("fmt-in/plain.jpg", encoded(photo(32, 32, 9), "JPEG"))
    for fmt, pillow in (("heic", "HEIF"), ("avif", "AVIF")):
        code, out, err = run_cli(capsys, "images", s3("fmt-in/"), s3(f"fmt-{fmt}/"),
                                 "--style", STYLE, "--format", fmt, "--json")
        assert code == 0 and json.loads(out)["ok"] == 3, err
        for stem, size in (("phone", (40, 30)), ("web", (30, 40)), ("plain", (32, 32))):
            result = opened(f"fmt-{fmt}/{stem}.{fmt}")
            assert (result.format, result.size) == (pillow, size)
    # a HEIC really is stylized, not copied: compare with the stylizer's own output
    source = np.asarray(opened("fmt-in/phone.heic").convert("RGB"))
    expected = Stylizer(resolve(STYLE))([source])[0].astype(int)
    got = np.asarray(opened("fmt-avif/phone.avif").convert("RGB")).astype(int)
    assert np.abs(got - expected).mean() < 6 < np.abs(source.astype(int) - expected).mean()


def frames_of(image: Image.Image) -> list[tuple[np.ndarray, int]]:
    """Every frame of an animation as RGB, with its duration in milliseconds."""
    out = []
    for frame in ImageSequence.Iterator(image):
        frame.load()
        out.append((np.asarray(frame.convert("RGB")).astype(int), frame.info["duration"]))
    return out


def test_animations_are_stylized_frame_by_frame(ray_session, capsys):
    """Animated GIF, WebP and APNG (and one in a tar archive): every frame, in order, with its
    duration and the loop count; the temporal step steadies what does not move."""
    names = {"GIF": "anim.gif", "WEBP": "anim.webp", "PNG": "anim.png"}
    for fmt, name in names.items():
        put(f"anim-in/{name}", animation(fmt))
    put("anim-in/bundle.tar", tar_bytes({"inner/anim.gif": animation("GIF")}))
    outputs = {}
    for temporal in ("0", "0.7"):
        code, out, err = run_cli(capsys, "images", s3("anim-in/"), s3(f"anim-out-{temporal}/"),
                                 "--style", STYLE, "--temporal", temporal, "--json")
        assert code == 0 and json.loads(out)["ok"] == 4, err
        for fmt, name in [*names.items(), ("GIF", "bundle/inner/anim.gif")]:
            result = opened(f"anim-out-{temporal}/{name}")
            assert result.format == fmt and result.info.get("loop") == 3
            frames = frames_of(result)
            assert [d for _, d in frames] == [80, 120, 160, 200, 240]  # every frame, its time
            outputs[temporal, fmt] = [f for f, _ in frames]
    stylizer = Stylizer(resolve(STYLE))

    def flicker(frames):  # change between frames where the input does not move (below the square)
        return np.mean([np.abs(b[20:] - a[20:]).mean() for a, b in zip(frames, frames[1:])])

    for fmt, name in names.items():
        inputs = [np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(
            opened(f"anim-in/{name}"))]
        stylized = [s.astype(int) for s in stylizer(inputs)]
        tolerance = {"GIF": 12, "WEBP": 12, "PNG": 1}[fmt]  # a palette, lossy, lossless
        for i, frame in enumerate(outputs["0", fmt]):  # no temporal step: input i, stylized
            errors = [np.abs(frame - s).mean() for s in stylized]
            assert int(np.argmin(errors)) == i and errors[i] < tolerance, (fmt, i, errors)
        # this style repaints a 36x28 frame wholesale (a mean change of ~40 grey levels where
        # nothing moves), 4x what the step's deviation budget lets it move a frame: it steadies
        # what the budget allows (docs/temporal.md)
        assert flicker(outputs["0.7", fmt]) < 0.8 * flicker(outputs["0", fmt]), fmt


def test_resume_knows_which_job_made_the_images(ray_session, capsys, tmp_path):
    for i in range(3):
        put(f"resume-in/p{i}.png", encoded(photo(24, 20, 30 + i), "PNG"))
    code, _, err = run_cli(capsys, "images", s3("resume-in/"), s3("resume-out/"),
                           "--style", "builtin:19")
    assert code == 0, err
    first = {i: get(f"resume-out/p{i}.png") for i in range(3)}

    code, out, err = run_cli(capsys, "images", s3("resume-in/"), s3("resume-out/"),
                             "--style", "builtin:3")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "another job" in err and "style 'builtin:19' -> 'builtin:3'" in err
    assert {i: get(f"resume-out/p{i}.png") for i in range(3)} == first  # nothing touched

    code, out, err = run_cli(capsys, "images", s3("resume-in/"), s3("resume-out/"),
                             "--style", "builtin:19", "--json")
    assert code == 0 and json.loads(out)["skipped"] == 3, err  # the same job: resumes

    code, out, err = run_cli(capsys, "images", s3("resume-in/"), s3("resume-out/"),
                             "--style", "builtin:3", "--overwrite", "--json")
    assert code == 0 and json.loads(out)["ok"] == 3, err
    source = np.asarray(Image.open(io.BytesIO(get("resume-in/p0.png"))).convert("RGB"))
    expected = Stylizer(resolve("builtin:3"))([source])[0]
    assert np.array_equal(np.asarray(opened("resume-out/p0.png").convert("RGB")), expected)

    # a DST with images no job recorded making (an older tool, a hand copy) is not trusted
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "p0.png").write_bytes(get("resume-in/p0.png"))
    code, out, err = run_cli(capsys, "images", s3("resume-in/"), foreign, "--style", STYLE)
    assert code == 2 and "no framestyle job recorded" in err
    assert sorted(p.name for p in foreign.iterdir()) == ["p0.png"]
