"""framestyle serve: the HTTP API, bad requests, batching, and the page in a real browser. One
server on the session's Ray instance for the whole module."""

from __future__ import annotations

import io
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image, ImageDraw

from framestyle.pipeline.style_image import resolve_style
from framestyle.pipeline.stylize import Stylizer
from media import audio_packets, decoded_frames, ffmpeg, frame_errors

STYLES = ["builtin:7", "builtin:19"]
ARTIFACTS = Path(__file__).parent / "artifacts"


def photo(width: int = 192, height: int = 128, seed: int = 0) -> np.ndarray:
    """Gradients and shapes: something with edges and colours for a network to paint."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    img = Image.fromarray(base.astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, width - 30)), int(rng.integers(0, height - 30))
        draw.ellipse([x0, y0, x0 + 30, y0 + 24], fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return np.asarray(img)


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def server(ray_session):
    from ray import serve

    from framestyle.jobs.cli import build_parser
    from framestyle.jobs.serve import start

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = build_parser().parse_args(["serve", "--port", str(port), "--styles", ",".join(STYLES),
                                      "--batch-size", "8", "--max-upload-mb", "1",
                                      "--max-megapixels", "4", "--max-video-seconds", "3"])
    url = start(args)
    try:
        yield url.rstrip("/")
    finally:
        serve.shutdown()


def test_the_api_gives_what_the_stylizer_gives(server, tmp_path):
    image = photo()
    raw = requests.post(f"{server}/v1/stylize", params={"style": "builtin:7"}, data=png(image),
                        timeout=120)
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/png"
    expected = Stylizer(resolve_style("builtin:7"))([image])[0]
    got = pixels_of(raw.content)
    assert got.shape == image.shape and np.abs(got.astype(int) - expected).max() <= 1
    assert np.abs(got.astype(int) - image).mean() > 20  # really stylized

    # a form with a painting as the style, at 0.6 strength, keeping the photo's colours
    painting = tmp_path / "painting.png"
    painting.write_bytes(png(photo(256, 256, seed=5)[:, :, ::-1]))
    form = requests.post(f"{server}/v1/stylize", timeout=120,
                         files={"image": ("photo.png", png(image), "image/png"),
                                "style_image": ("painting.png", painting.read_bytes())},
                         data={"strength": "0.6", "preserve_color": "true", "format": "jpg"})
    assert form.status_code == 200 and form.headers["content-type"] == "image/jpeg"
    expected = Stylizer(resolve_style(f"image:{painting}", strength=0.6,
                                      preserve_color=True))([image])[0]
    assert np.abs(pixels_of(form.content).astype(int) - expected).mean() < 3  # JPEG

    small = requests.post(f"{server}/v1/stylize", params={"style": "builtin:19", "max_side": 96},
                          data=png(image), timeout=120)
    assert small.status_code == 200 and pixels_of(small.content).shape == (64, 96, 3)


def test_styles_are_listed_with_thumbnails(server):
    listed = requests.get(f"{server}/v1/styles", timeout=30).json()["styles"]
    assert [s["style"] for s in listed] == STYLES
    thumbnails = [pixels_of(requests.get(server + s["thumbnail"], timeout=120).content)
                  for s in listed]
    assert all(t.shape == (160, 160, 3) for t in thumbnails)
    assert np.abs(thumbnails[0].astype(int) - thumbnails[1]).mean() > 10  # two looks
    assert requests.get(f"{server}/v1/styles/9/thumbnail.jpg", timeout=30).status_code == 404
    page = requests.get(f"{server}/", timeout=30)
    assert page.status_code == 200 and "/v1/stylize" in page.text


def bomb() -> bytes:
    """A 10000x10000 PNG of a few kilobytes: 100 megapixels once decoded."""
    buffer = io.BytesIO()
    Image.new("1", (10000, 10000)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.faults
def test_bad_requests_get_a_4xx_naming_the_problem_and_serving_goes_on(server):
    good = png(photo())
    url = f"{server}/v1/stylize"
    cases = [
        ("not an image", dict(data=b"hello, world", params={"style": "builtin:7"}), 400,
         "not an image"),
        ("truncated", dict(data=good[:len(good) // 2], params={"style": "builtin:7"}), 400,
         "truncated"),
        ("decompression bomb", dict(data=bomb(), params={"style": "builtin:7"}), 413,
         "too large"),
        ("over the megapixel limit", dict(data=png(np.zeros((1500, 3000, 3), np.uint8))), 413,
         "over the 4 MP limit"),
        ("over the upload limit", dict(data=b"\0" * (2 * 2**20)), 413, "limit"),
        ("unknown style", dict(data=good, params={"style": "builtin:3"}), 400, "unknown style"),
        ("malformed form", dict(data=b"garbage", headers={
            "content-type": "multipart/form-data; boundary=x"}), 400, "malformed form"),
        ("form without image", dict(files={"style": (None, "builtin:7")}), 400, "no image"),
        ("strength out of range", dict(data=good, params={"strength": "3"}), 400, "strength"),
        ("unknown format", dict(data=good, params={"format": "bmp"}), 400, "format"),
        ("style picture not a picture", dict(files={"image": ("a.png", good),
                                                    "style_image": ("b.jpg", b"nope")}), 400,
         "style_image"),
    ]
    for name, request, status, words in cases:
        response = requests.post(url, timeout=60, **request)
        assert response.status_code == status, (name, response.text)
        assert words in response.json()["error"], (name, response.text)
        assert requests.get(f"{server}/healthz", timeout=30).json()["status"] == "ok", name
    assert requests.post(url, data=good, params={"style": "builtin:7"},
                         timeout=60).status_code == 200
    odd = requests.get(f"{server}/v1/styles/first/thumbnail.jpg", timeout=30)
    assert odd.status_code == 400 and "index" in odd.json()["error"]  # FastAPI's check, our JSON


def test_concurrent_requests_share_forward_passes(server):
    before = requests.get(f"{server}/healthz", timeout=30).json()
    images = [photo(seed=i) for i in range(8)]
    responses = [None] * len(images)
    barrier = threading.Barrier(len(images))

    def send(i):
        barrier.wait()
        responses[i] = requests.post(f"{server}/v1/stylize", params={"style": "builtin:19"},
                                     data=png(images[i]), timeout=120)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in responses] == [200] * len(images)
    expected = Stylizer(resolve_style("builtin:19"))(images)
    for response, want in zip(responses, expected):  # each answer is its own image's
        assert np.abs(pixels_of(response.content).astype(int) - want).max() <= 1
    after = requests.get(f"{server}/healthz", timeout=30).json()
    assert after["requests"] - before["requests"] == len(images)
    assert after["batches"] - before["batches"] < len(images)  # some went through together


def wait_for_video(server, answer: dict, seconds: float = 240) -> list[dict]:
    """Poll a started video until it ends; every status seen."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.append(requests.get(server + answer["status"], timeout=30).json())
        if seen[-1]["status"] != "running":
            return seen
        time.sleep(0.5)
    raise AssertionError(f"still running after {seconds} s: {seen[-1]}")


def test_a_short_video_goes_through_the_video_job(server, clips, tmp_path):
    """The page's videos: the video job with its temporal step, every frame in place, the audio
    kept, progress as it goes; refused when not a video or too long."""
    bunny = clips["bunny"]  # 2 s, 50 frames, 5.1 audio
    started = requests.post(f"{server}/v1/videos", timeout=60,
                            files={"video": ("bunny.mp4", bunny.read_bytes())},
                            data={"style": "builtin:19"})
    assert started.status_code == 202, started.text
    seen = wait_for_video(server, started.json())
    assert seen[-1]["status"] == "done" and seen[-1]["error"] is None
    assert seen[-1]["frames_done"] == seen[-1]["frames_total"] == 50
    done = [s["frames_done"] for s in seen]
    assert done == sorted(done)  # progress only goes forward
    result = requests.get(server + started.json()["result"], timeout=60)
    assert result.status_code == 200 and result.headers["content-type"] == "video/mp4"
    out = tmp_path / "out.mp4"
    out.write_bytes(result.content)
    frames, inputs = decoded_frames(out), decoded_frames(bunny)
    assert len(frames) == 50
    # close to each frame stylized on its own (the temporal step and H.264 at 160x90 move a
    # fast-textured style by ~15 levels), and far from the same frames in another style
    errors = frame_errors(frames, Stylizer(resolve_style("builtin:19"))(inputs))
    other = frame_errors(frames, Stylizer(resolve_style("builtin:7"))(inputs))
    assert errors.mean() < 20 and errors.mean() < other.mean() / 2, (errors, other)
    assert audio_packets(out) == audio_packets(bunny)  # the 5.1 audio, untouched

    not_video = requests.post(f"{server}/v1/videos", data=b"just text", timeout=60)
    assert not_video.status_code == 400 and "not a readable video" in not_video.json()["error"]
    long = tmp_path / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10", "-t", "5", "-pix_fmt", "yuv420p",
           str(long))
    too_long = requests.post(f"{server}/v1/videos", data=long.read_bytes(), timeout=60)
    assert too_long.status_code == 413 and "3 s limit" in too_long.json()["error"]
    assert requests.get(f"{server}/v1/videos/nope", timeout=30).status_code == 404
    assert requests.get(f"{server}/v1/videos/nope/result.mp4", timeout=30).status_code == 404


def test_the_page_stylizes_in_a_real_browser(server, clips, tmp_path):
    from playwright.sync_api import sync_playwright

    image = photo(240, 160, seed=3)
    upload = tmp_path / "photo.png"
    upload.write_bytes(png(image))
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        problems = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(f"{server}/")
        page.set_input_files("#photo", str(upload))
        page.click("#styles button[data-style='builtin:19']")
        page.wait_for_function("document.querySelectorAll('#styles img').length == 2 && "
                               "[...document.querySelectorAll('#styles img')].every("
                               "i => i.complete && i.naturalWidth > 0)", timeout=120_000)
        page.click("#go")
        page.wait_for_selector("#result[data-ready='true']", timeout=120_000)
        result = bytes(page.evaluate(
            "async () => Array.from(new Uint8Array(await (await fetch("
            "document.querySelector('#result').src)).arrayBuffer()))"))
        page.fill("#slider", "70")
        page.dispatch_event("#slider", "input")
        page.screenshot(path=str(ARTIFACTS / "serve-page.png"), full_page=True)
        status = page.inner_text("#status")
        # then a short video, through the video job, with its progress shown
        page.set_input_files("#photo", str(clips["bunny"]))
        page.click("#go")
        page.wait_for_selector("#result-video[data-ready='true']", timeout=240_000)
        video = bytes(page.evaluate(
            "async () => Array.from(new Uint8Array(await (await fetch("
            "document.querySelector('#result-video').src)).arrayBuffer()))"))
        progress = page.inner_text("#frames")
        page.screenshot(path=str(ARTIFACTS / "serve-page-video.png"), full_page=True)
        browser.close()
    assert problems == [] and status.startswith("done")
    assert progress == "50 / 50 frames"
    (tmp_path / "page.mp4").write_bytes(video)
    assert len(decoded_frames(tmp_path / "page.mp4")) == 50
    got = pixels_of(result)
    expected = Stylizer(resolve_style("builtin:19"))([image])[0]
    assert got.shape == image.shape
    assert np.abs(got.astype(int) - image).mean() > 20  # not the input
    assert np.abs(got.astype(int) - expected).max() <= 1  # the stylizer's own result


def test_the_rayservice_manifest_deploys_this_app():
    """infra/k8s/rayservice.yaml names our application builder with arguments it takes, the
    pinned Ray and the image of this version, GPUs for the workers and token auth on."""
    import importlib
    import importlib.metadata

    import ray
    import yaml
    from ray.serve import Application

    manifest = yaml.safe_load((Path(__file__).parent.parent / "infra" / "k8s" /
                               "rayservice.yaml").read_text())
    assert (manifest["apiVersion"], manifest["kind"]) == ("ray.io/v1", "RayService")
    (app,) = yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]
    module, _, name = app["import_path"].partition(":")
    assert isinstance(getattr(importlib.import_module(module), name)(app["args"]), Application)
    cluster = manifest["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == ray.__version__
    pods = [cluster["headGroupSpec"]["template"]] + [g["template"]
                                                    for g in cluster["workerGroupSpecs"]]
    version = importlib.metadata.version("framestyle")
    for pod in pods:
        (container,) = pod["spec"]["containers"]
        assert container["image"] == f"framestyle:{version}"
        assert {"name": "RAY_AUTH_MODE", "value": "token"} in container["env"]
        assert "AWS_SECRET_ACCESS_KEY" not in str(container)
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert all(g["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
               for g in cluster["workerGroupSpecs"])
    styles = app["args"]["styles"].split(",")
    assert all(resolve_style(style) for style in styles)


def test_bad_serve_options_stop_in_one_line_before_anything_starts(capsys):
    from framestyle.jobs.cli import main

    for argv, words in [(["--styles", "builtin:7,builtin:99"], "builtin:99"),
                        (["--replicas", "0"], "--replicas must be at least 1"),
                        (["--styles", "image:/no/such/painting.jpg"], "painting.jpg")]:
        assert main(["serve", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("framestyle: error:") and words in err[0], err


def test_the_video_service_keeps_a_bounded_number_of_finished_videos(tmp_path):
    """A server that runs for weeks deletes the oldest finished videos, files and all, and never
    one still running."""
    from framestyle.jobs import serve_app

    service = serve_app.VideoService.func_or_class(str(tmp_path), 10.0)
    for i in range(serve_app.KEPT_VIDEOS + 5):
        (tmp_path / f"job{i}").mkdir()
        (tmp_path / f"job{i}" / "result.mp4").write_bytes(b"x")
        service.jobs[f"job{i}"] = {"status": "running" if i == 0 else "done"}
    service._forget_old()
    kept = list(service.jobs)
    assert kept[0] == "job0"  # still running
    assert len(kept) == serve_app.KEPT_VIDEOS  # room for the one about to start
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)
