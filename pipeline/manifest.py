"""``DST/_job.json``: what a bulk job did, item by item, rewritten as items finish.

Per input: its status (pending, done, skipped, failed), output URI, frames, seconds, chunks
reused and retried, error, and its preview; the totals; the job's settings (the spec). Every
write replaces the whole object atomically (``storage.put_bytes``), so a reader, or a run killed
mid-write, never sees half a manifest. Whether an item is finished is decided by its output (which
carries the job's identity, ``assemble.finished_output``), never by this file: it is the
record people and scripts read, and the report is rendered from it.
"""

from __future__ import annotations

import json
import time

from ..core import storage

MANIFEST_NAME = "_job.json"
PENDING = "pending"
CARRIED = ("preview", "frames_out", "chunks", "chunks_reused", "chunks_retried", "seconds",
           "fps", "audio_streams", "audio_reencoded", "codec")


class Manifest:
    def __init__(self, uri: str, spec: dict, inputs: list[dict]):
        """``inputs``: one entry per item ({"input", "output"}, or a failure already known)."""
        self.uri = uri
        self.started = time.time()
        self.spec = spec
        self._previous = {item["input"]: item for item in _load(uri).get("items", [])}
        self.items = {item["input"]: {"status": PENDING, "error": None, **item} for item in inputs}

    def update(self, *summaries: dict) -> dict:
        """Record items' ends and rewrite the manifest. An item skipped because this job
        finished it before keeps what the earlier run recorded about it (frames, preview)."""
        for summary in summaries:
            item = dict(summary)
            before = self._previous.get(item["input"])
            if (item["status"] == "skipped" and before
                    and before.get("job_id") == item.get("job_id")):
                item.update({k: before[k] for k in CARRIED if before.get(k) is not None})
            self.items[item["input"]] = {**self.items.get(item["input"], {}), **item}
        return self.write()

    @property
    def data(self) -> dict:
        items = list(self.items.values())
        count = {s: sum(1 for i in items if i["status"] == s)
                 for s in ("done", "skipped", "failed", PENDING)}
        return {
            "version": 1, "spec": self.spec,
            "started": _iso(self.started), "updated": _iso(time.time()),
            "totals": {"videos": len(items), **count,
                       "frames": sum(i.get("frames_out") or 0 for i in items
                                     if i["status"] in ("done", "skipped")),
                       "seconds": round(time.time() - self.started, 3)},
            "items": items,
        }

    def write(self) -> dict:
        """Rewrite the manifest; what it now says."""
        data = self.data
        storage.storage_for(self.uri).put_bytes(json.dumps(data, indent=2).encode(), self.uri)
        return data


def _load(uri: str) -> dict:
    data = storage.storage_for(uri).get_bytes(uri)
    try:
        return json.loads(data) if data else {}
    except ValueError:
        return {}  # a damaged manifest is rewritten from this run


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
