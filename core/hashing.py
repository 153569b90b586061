"""Content hashes: of files (checkpoints, chunks) and of settings (job identities)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def identity_hash(identity: dict, length: int = 16) -> str:
    """A short stable hash of a JSON-able dict: equal settings give equal ids, in any order."""
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]
