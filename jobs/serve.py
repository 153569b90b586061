"""framestyle serve: the stylizer online, a web page and an HTTP API, on Ray Serve."""

from __future__ import annotations

import argparse
import sys
import time

# The endpoint's limits (jobs/serve_app.py takes them from here: this module loads no Ray)
DEFAULT_MAX_UPLOAD_MB = 25.0
DEFAULT_MAX_MEGAPIXELS = 40.0
DEFAULT_MAX_VIDEO_SECONDS = 10.0  # the page's videos are short; bulk work goes to `video`
DEFAULT_BATCH_SIZE = 8  # on GPUs; on CPUs batching is off (benchmarks.serve)

HELP = "serve stylization online: a web page and an HTTP API (Ray Serve), until Ctrl-C"
EPILOG = """Open http://HOST:PORT/ for the page: pick or drop a photo, pick a style from the thumbnails
or drop a painting to use as the style, set strength and colour preservation, compare before
and after, download. The API:

  curl --data-binary @photo.jpg 'http://127.0.0.1:8000/v1/stylize?style=builtin:7' -o out.png
  curl -F image=@photo.jpg -F style_image=@painting.jpg -F strength=0.8 \\
       http://127.0.0.1:8000/v1/stylize -o out.png
  curl http://127.0.0.1:8000/v1/styles

Bad requests get a 4xx JSON {"error": ...}. Binds to 127.0.0.1 unless --host says otherwise.
With --address it runs on that Ray cluster (one replica per GPU where it has GPUs).

exit codes: 0 stopped with Ctrl-C, 2 bad option or style, 5 cluster unavailable"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models.hub import BUILTIN_STYLES

    parser.add_argument("--address", default=None,
                        help="Ray cluster to run on (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    parser.add_argument("--styles", default=None, metavar="STYLE,...",
                        help=f"the styles offered, comma-separated, in any form --style takes "
                        f"(default: the {BUILTIN_STYLES} built-ins); a picture sent with a "
                        "request is always allowed as its style")
    parser.add_argument("--replicas", type=int, default=None, metavar="N",
                        help="replicas of the stylizer (default: one per GPU, else 1)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N",
                        help="requests a replica runs through the network together (default: 8 "
                        "on GPUs; 1, no batching, on CPUs, where python -m benchmarks.serve "
                        "measured batching 10-20%% slower)")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB, metavar="MB",
                        help="largest upload accepted (default: %(default)g)")
    parser.add_argument("--max-megapixels", type=float, default=DEFAULT_MAX_MEGAPIXELS,
                        metavar="MP",
                        help="largest image accepted, in decoded pixels (default: %(default)g)")
    parser.add_argument("--max-video-seconds", type=float, default=DEFAULT_MAX_VIDEO_SECONDS,
                        metavar="S",
                        help="longest video the page takes (default: %(default)g)")
    parser.add_argument("--video-work", default=None, metavar="URI",
                        help="where the page's videos, their chunks and results go (default: a "
                        "local temporary folder; on a cluster of several machines an s3:// "
                        "prefix every node can reach)")


def run(args: argparse.Namespace) -> dict:
    url = start(args)
    print(f"framestyle: serving on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        from ray import serve

        serve.shutdown()
    return {"url": url, "seconds": round(time.monotonic() - started, 1)}


def start(args: argparse.Namespace) -> str:
    """Deploy on the cluster (or a local Ray) and return the page's URL."""
    import ray
    from ray import serve

    from ..core.errors import InputError
    from ..pipeline.cluster import connect
    from .serve_app import application, checked_styles

    styles = checked_styles(args.styles)  # a bad style stops here, before anything starts
    for name in ("replicas", "batch_size", "port"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1")
    connect(args.address)
    gpus = int(ray.cluster_resources().get("GPU", 0))
    serve.start(http_options={"host": args.host, "port": args.port})
    batch_size = args.batch_size or (DEFAULT_BATCH_SIZE if gpus else 1)
    serve.run(application(styles, args.max_upload_mb, args.max_megapixels, batch_size,
                          args.replicas or max(1, gpus), gpus > 0, args.max_video_seconds,
                          args.video_work),
              name="framestyle", route_prefix="/")
    return f"http://{args.host}:{args.port}/"


def summary_line(result: dict) -> str:
    return f"stopped serving {result['url']} after {result['seconds']:.0f} s"
