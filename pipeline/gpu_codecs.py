"""NVDEC decoding and NVENC encoding on GPU nodes, where the node can really use them.

The bundled ffmpeg lists ``h264_nvenc``, ``hevc_nvenc``, ``av1_nvenc`` and the ``cuda`` hwaccel,
but they work only where an NVIDIA driver provides libcuda and libnvidia-encode, and only for
what that GPU's generation supports. So each node tries them once, on a few synthetic frames,
caches the answer for the process and logs it; a node without them decodes and encodes on its
CPUs as before. On a machine without NVIDIA devices nothing is tried.

Decoding: NVDEC gives the same frames as the CPU decoder (H.264/HEVC/AV1 decoding is exact), and
``decode.iter_frames`` falls back to the CPU for a stream NVDEC cannot start on, so each node
decides alone.

Encoding cannot be decided by each node alone: chunks from different encoders do not join into
one stream by copy. A video's encoder is chosen once per run, on the driver, by asking a GPU
node (``gpu_node_codecs``); a chunk that lands on a node without NVENC is encoded on the CPU, and
assembly, which reads each chunk's encoder from its stream, re-encodes the NVENC chunks of a
video whose chunks were made both ways (``assemble.joinable``), so the output is one stream.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .ffmpeg_exe import ffmpeg_exe
from .formats import VIDEO_CODECS

log = logging.getLogger("framestyle")

SOFTWARE, NVENC = "software", "nvenc"
# the NVENC encoder per codec we write; the others are always encoded on the CPU
NVENC_ENCODERS = {name: codec.nvenc for name, codec in VIDEO_CODECS.items() if codec.nvenc}
_TRIAL_SOURCE = "testsrc2=size=256x144:rate=25"  # NVENC's minimum frame size is 145x49


@dataclass(frozen=True)
class NodeCodecs:
    nvdec: bool  # ffmpeg can decode on this node's GPU
    nvenc: frozenset[str]  # the codecs (keys of NVENC_ENCODERS) it can encode there

    def describe(self) -> str:
        encodes = ", ".join(sorted(self.nvenc)) or "none"
        return f"NVDEC {'yes' if self.nvdec else 'no'}, NVENC {encodes}"


NO_GPU_CODECS = NodeCodecs(False, frozenset())


def has_nvidia_device() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")


@lru_cache(maxsize=1)
def node_codecs() -> NodeCodecs:
    """What this node's ffmpeg can do on its GPU, tried once per process and logged."""
    if not has_nvidia_device():
        return NO_GPU_CODECS
    nvenc = frozenset(codec for codec, encoder in NVENC_ENCODERS.items()
                      if _succeeds("-f", "lavfi", "-i", _TRIAL_SOURCE, "-frames:v", "3",
                                   "-pix_fmt", "yuv420p", "-c:v", encoder, "-f", "null", "-"))
    found = NodeCodecs(_nvdec_works(), nvenc)
    log.warning("framestyle: hardware codecs on %s: %s", os.uname().nodename, found.describe())
    return found


def _nvdec_works() -> bool:
    with tempfile.TemporaryDirectory(prefix="framestyle-nvdec-") as tmp:
        sample = str(Path(tmp, "trial.mp4"))
        if not _succeeds("-f", "lavfi", "-i", _TRIAL_SOURCE, "-frames:v", "3", "-pix_fmt",
                         "yuv420p", "-c:v", "libx264", sample):
            return False
        # frames kept on the GPU and downloaded by a filter: fails, rather than silently
        # decoding on the CPU, where CUDA cannot decode
        return _succeeds("-hwaccel", "cuda", "-hwaccel_output_format", "cuda", "-i", sample,
                         "-vf", "hwdownload,format=nv12", "-f", "null", "-")


def _succeeds(*args: str) -> bool:
    try:
        done = subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                               "-y", *args], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def encoder_for(codec: str, wanted: str, codecs: NodeCodecs) -> str:
    """The encoder a chunk of a video meant for ``wanted`` is made with on a node that has
    ``codecs``: NVENC only where the video chose it and this node can."""
    return NVENC if wanted == NVENC and codec in codecs.nvenc else SOFTWARE


def gpu_node_codecs() -> NodeCodecs:
    """What a GPU node of the cluster can do (asked once per run, before the stylizers take
    the GPUs); NO_GPU_CODECS on a cluster without GPUs."""
    import ray

    if not ray.cluster_resources().get("GPU"):
        return NO_GPU_CODECS
    probe = ray.remote(num_gpus=1, num_cpus=0)(node_codecs)
    try:
        return ray.get(probe.remote(), timeout=120)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayError):
        return NO_GPU_CODECS  # the GPUs are busy or gone: the CPUs encode, as everywhere else
