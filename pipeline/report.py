"""The bulk job's report: a page a person opens to see what the job did.

``video_preview`` runs where a video is assembled, while its output is still a local file: it
stores a before/after strip of stills and a short animated before/after preview (WebP) under the
report's folder, and measures the output's flicker (``flicker.warping_error``, E_warp) on the
preview's frames. ``write_report`` renders the manifest (``manifest``) as ``_report.html``:
totals, per video its previews, frames, time and flicker figure, and the failures with their
reasons. The page is static HTML with relative links to its images, so a copied or synced
destination folder opens as it is.
"""

from __future__ import annotations

import html
import io
from datetime import datetime, timezone
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageDraw

from ..core import storage
from .decode import iter_frames
from .flicker import warping_error
from .probe import VideoInfo

STILLS = 4  # frames across the video in the strip
THUMB_WIDTH = 240  # px, as displayed
ANIMATION_SECONDS = 2.0
ANIMATION_FRAMES = 40  # at most
ANIMATION_WIDTH = 160  # px per side
FLICKER_FRAMES = 8  # consecutive preview frames for the flicker figure (TV-L1, ~0.15 s a pair)


def video_preview(original: str, info: VideoInfo, output: str, out_info: VideoInfo,
                  prefix: str) -> dict:
    """Store ``prefix.strip.png`` (stills across the video, inputs above outputs) and
    ``prefix.webp`` (the first seconds, input beside output); their names (relative to
    ``prefix``'s folder) and the flicker figure."""
    frames = out_info.frames
    picks = sorted({round(i * (frames - 1) / max(1, STILLS - 1)) for i in range(STILLS)})
    size = _coded_size(out_info, THUMB_WIDTH)
    pairs = [(_frames(original, info, i, 1, size)[0], _frames(output, out_info, i, 1, size)[0])
             for i in picks]
    strip = _strip(pairs, picks)
    count = max(1, min(frames, ANIMATION_FRAMES, round(float(out_info.fps) * ANIMATION_SECONDS)))
    small = _coded_size(out_info, ANIMATION_WIDTH)
    before = _frames(original, info, 0, count, small)
    after = _frames(output, out_info, 0, count, small)
    flicker = warping_error(before[:FLICKER_FRAMES], after[:FLICKER_FRAMES]).warping_error
    animation = [Image.fromarray(np.concatenate([b, a], axis=1)) for b, a in zip(before, after)]
    strip_uri, animation_uri = f"{prefix}.strip.png", f"{prefix}.webp"
    _store(strip_uri, strip, format="PNG")
    _store(animation_uri, animation[0], format="WEBP", save_all=True,
           append_images=animation[1:], duration=round(1000 / float(out_info.fps)), loop=0,
           quality=70)
    return {"strip": storage.basename(strip_uri), "animation": storage.basename(animation_uri),
            "flicker": round(flicker, 5)}


def _coded_size(info: VideoInfo, width: int) -> tuple[int, int]:
    """The coded frame size whose displayed width is about ``width`` (even numbers)."""
    w, h = (info.width, info.height) if info.rotation % 180 == 0 else (info.height, info.width)
    shown = (width, max(2, round(h * width / w / 2) * 2))
    return shown if info.rotation % 180 == 0 else shown[::-1]


def _frames(path: str, info: VideoInfo, start: int, count: int,
            size: tuple[int, int]) -> list[np.ndarray]:
    """Frames ``start``.. as displayed (rotation applied)."""
    turns = info.rotation // 90
    return [np.ascontiguousarray(np.rot90(f, k=turns)) if turns else f
            for f in iter_frames(path, info, start, count, size)]


def _strip(pairs: list[tuple[np.ndarray, np.ndarray]], picks: list[int]) -> Image.Image:
    """Stills across the video: inputs in the top row, outputs below, frame numbers above."""
    label, gap = 18, 4
    h, w = pairs[0][0].shape[:2]
    sheet = Image.new("RGB", (len(pairs) * (w + gap) - gap, label + 2 * h + gap), "white")
    draw = ImageDraw.Draw(sheet)
    for k, ((before, after), index) in enumerate(zip(pairs, picks)):
        x = k * (w + gap)
        draw.text((x + 4, 3), f"frame {index}", fill="black")
        sheet.paste(Image.fromarray(before), (x, label))
        sheet.paste(Image.fromarray(after), (x, label + h + gap))
    return sheet


def _store(uri: str, image: Image.Image, **options) -> None:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    storage.storage_for(uri).put_bytes(buffer.getvalue(), uri)


# --- the page -----------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { padding: .4em .8em; text-align: left;
vertical-align: top; border-bottom: 1px solid #ddd; }
.failed { color: #a00; } .totals td { font-weight: 600; }
img { max-width: 100%; display: block; margin: .3em 0; } figure { margin: 0 0 2em; }
"""


def write_report(uri: str, manifest: dict, previews: str) -> None:
    """Render ``manifest`` (``manifest.Manifest.data``) as the HTML page ``uri``; the preview
    images live in ``previews``, a folder beside the page."""
    totals, items = manifest["totals"], manifest["items"]
    rows = "".join(_row(item) for item in items)
    figures = "".join(_figure(item, previews) for item in items if item.get("preview"))
    failures = [item for item in items if item["status"] == "failed"]
    failed_list = "".join(f"<li><b>{_e(f['input'])}</b>: {_e(f.get('error') or '')}</li>"
                          for f in failures)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>framestyle: {_e(manifest['spec'].get('style', ''))} on {len(items)} videos</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style></head>
<body>
<h1>{len(items)} videos, style {_e(manifest['spec'].get('style', ''))}</h1>
<p>Updated {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}. Flicker is the warping error
E_warp of the first frames (lower is steadier).</p>
<table>
<tr><th>input</th><th>status</th><th>output</th><th>frames</th><th>seconds</th>
<th>chunks reused</th><th>flicker</th></tr>
{rows}
<tr class="totals"><td>total</td><td>{totals['done']} done, {totals['skipped']} skipped,
{totals['failed']} failed</td><td></td><td>{totals['frames']}</td><td>{totals['seconds']}</td>
<td></td><td></td></tr>
</table>
{f'<h2 class="failed">Failures</h2><ul class="failed">{failed_list}</ul>' if failures else ''}
<h2>Before and after</h2>
{figures or '<p>No previews yet.</p>'}
</body></html>
"""
    storage.storage_for(uri).put_bytes(page.encode(), uri)


def _row(item: dict) -> str:
    flicker = (item.get("preview") or {}).get("flicker")
    return (f'<tr class="{_e(item["status"])}"><td>{_e(item["input"])}</td>'
            f'<td>{_e(item["status"])}</td><td>{_e(item.get("output") or "")}</td>'
            f'<td>{item.get("frames_out") or ""}</td><td>{item.get("seconds", "")}</td>'
            f'<td>{item.get("chunks_reused", "")}</td>'
            f'<td>{"" if flicker is None else f"{flicker:.4f}"}</td></tr>\n')


def _figure(item: dict, previews: str) -> str:
    preview = item["preview"]
    name = _e(storage.basename(item["input"]))
    strip, animation = (_e(quote(f"{previews}/{preview[k]}")) for k in ("strip", "animation"))
    return (f'<figure><figcaption><b>{name}</b> ({item.get("frames_out")} frames)</figcaption>'
            f'<img src="{strip}" alt="{name}: stills before and after">'
            f'<img src="{animation}" alt="{name}: animated preview"></figure>\n')


def _e(text) -> str:
    return html.escape(str(text), quote=True)
