"""The stylizer on a CPU without PyTorch: the node's export of the network in onnxruntime, numpy
around it.

``import torch`` alone took 1.5 s on our 2-core machine, more than a tenth of a 10 s video job,
where onnxruntime, OpenCV and numpy import in 0.13 s. On a CPU whose node has exported the style's
network already (``onnx_engine``: once per node, by the first stylizer that needs it), nothing
else of PyTorch is needed: the export records the network's memory cost per pixel, and padding
and pixel scaling are array arithmetic. ``make_stylizer`` picks this stylizer there and the full
``stylize.Stylizer`` everywhere else (a GPU, another engine or precision, --compile, --max-tile,
a first run on the node); the full one runs its onnxruntime passes through the same functions
here, so both give the same frames, bit for bit. A frame too large for the memory budget runs
in tiles, which need the PyTorch module: this stylizer hands such frames to a full one, made
then.
"""

from __future__ import annotations

import os
import sys
from collections import namedtuple
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..models.hub import ModelRef
from .inference import InferenceOptions
from .look import apply_look
from .memory import SharedBudget, holding, shared_budget, worker_budget
from .onnx_engine import OnnxNetwork

Device = namedtuple("Device", "type")  # what a torch.device says of where a stylizer runs
CPU = Device("cpu")
# Device files through which PyTorch reaches a GPU on Linux (NVIDIA; AMD's ROCm; WSL 2): where
# none exists, torch.cuda is never available, and a CPU job need not import torch to find out
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def device_type() -> str:
    """Where a stylizer in this process would run ("cpu", "cuda"), importing torch only where a
    GPU may be there to use."""
    if sys.platform.startswith("linux") and not any(Path(f).exists() for f in GPU_DEVICE_FILES):
        return "cpu"
    from .stylize import pick_device

    return pick_device().type


def runs_without_torch(style: ModelRef, options: InferenceOptions) -> bool:
    """Whether ``style`` would run in onnxruntime in fp32 here, untiled unless a frame needs
    it, from an export (TorchScript networks are not exported), on a CPU."""
    return (options.engine in ("auto", "onnxruntime") and options.dtype in ("auto", "fp32")
            and not options.compile and not options.max_tile and style.arch.module is not None
            and device_type() == "cpu")


def make_stylizer(style: ModelRef, options: InferenceOptions = InferenceOptions(),
                  threads: int | None = None):
    """An ``OnnxStylizer`` where ``style`` runs without PyTorch and this node has its export,
    else a ``stylize.Stylizer`` (which makes the export, so the next one here needs no
    PyTorch); the two are used alike."""
    if runs_without_torch(style, options):
        network = OnnxNetwork.cached(style, threads or onnx_threads())
        if network is not None:
            return OnnxStylizer(style, network, options)
    from .stylize import Stylizer

    return Stylizer(style, options, threads=threads)


def onnx_threads() -> int:
    """The threads a stylizer's session takes where the caller names none: those Ray gives an
    actor (OMP_NUM_THREADS, as PyTorch reads it), else onnxruntime's own default (0)."""
    try:
        return max(0, int(os.environ.get("OMP_NUM_THREADS", "0")))
    except ValueError:
        return 0


class OnnxStylizer:
    """Frames (H, W, 3 uint8) in, stylized frames of the same size out, like
    ``stylize.Stylizer``, from an onnxruntime export, in passes that fit the memory budget."""

    engine = "onnxruntime"
    device = CPU

    def __init__(self, style: ModelRef, network: OnnxNetwork,
                 options: InferenceOptions = InferenceOptions(),
                 bytes_per_pixel: float | None = None, budget: int | None = None):
        self.style, self.options = style, options
        self.network = network
        self.low, self.high = style.arch.pixels
        self.multiple = style.multiple
        self.strength, self.preserve_color = style.strength, style.preserve_color
        self.condition = None if style.condition is None else \
            np.asarray(style.condition, np.float32)
        self.budget = budget or options.memory_budget or worker_budget(CPU)
        self.shared, self.whole_budget = budget_shared(options, self.budget)
        self.bytes_per_pixel = bytes_per_pixel or network.bytes_per_pixel
        self._tiles = None  # the full stylizer frames over the budget go to, made when needed
        self._restyled: ModelRef | None = None  # the last restyle's, for a full one made later

    def restyle(self, style: ModelRef) -> None:
        """Switch to another mix of the built-in styles without reloading the network."""
        if style.condition is None:
            raise ValueError("restyle works between built-in styles only")
        self.condition = np.asarray(style.condition, np.float32)
        self._restyled = style
        if self._tiles is not None:
            self._tiles.restyle(style)

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        if not frames:
            return []
        h, w = frames[0].shape[:2]
        if h * w * self.bytes_per_pixel > self.whole_budget:  # tiles: the full stylizer's
            if self._tiles is None:
                self._tiles = self._full_stylizer()
                if self._restyled is not None:
                    self._tiles.restyle(self._restyled)
            return self._tiles(frames)
        return in_passes(frames, frames_per_pass(self.budget, self.bytes_per_pixel, frames[0]),
                         self.stylize_pass, self.strength, self.preserve_color, self.shared,
                         self.bytes_per_pixel)

    @property
    def tiled_frames(self) -> int:
        """Frames that ran in tiles because they did not fit the budget (the full stylizer's
        count: only it tiles)."""
        return 0 if self._tiles is None else self._tiles.tiled_frames

    def stylize_pass(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """One pass of same-size frames through the network, the look not applied. A pass over
        this stylizer's own share of the memory (one that a process's shared budget let in,
        ``budget_shared``) gives the memory back when it ends: onnxruntime's arena would keep
        it, and every stylizer of the process keeping a large frame's memory would add up to
        several times what they share."""
        h, w = frames[0].shape[:2]
        borrowed = len(frames) * h * w * self.bytes_per_pixel > self.budget
        x = to_network(frames, self.low, self.high, self.multiple)
        return from_network(self.network.run(x, self.condition, release=borrowed), self.low,
                            self.high, h, w)

    def _full_stylizer(self):
        from .stylize import Stylizer

        return Stylizer(self.style, self.options)


def budget_shared(options: InferenceOptions, budget: int) -> tuple[SharedBudget | None, int]:
    """(the budget a stylizer shares with the others on threads of its process, or None; the
    most one frame may take untiled): the whole process's where ``options`` say several share
    it (``InferenceOptions.sharing_process``), else its own ``budget``."""
    if options.replicas_sharing <= 1:
        return None, budget
    shared = shared_budget(budget * options.replicas_sharing)
    return shared, shared.total


def frames_per_pass(budget: float, bytes_per_pixel: float, frame: np.ndarray) -> int:
    """How many frames of ``frame``'s size a pass holds within ``budget`` (at least one)."""
    h, w = frame.shape[:2]
    return max(1, int(budget // (bytes_per_pixel * h * w)))


def in_passes(frames: list[np.ndarray], per_pass: int,
              stylize_pass: Callable[[list[np.ndarray]], list[np.ndarray]],
              strength: float, preserve_color: bool, shared: SharedBudget | None = None,
              bytes_per_pixel: float = 0) -> list[np.ndarray]:
    """``frames`` (all of one size) through ``stylize_pass``, ``per_pass`` at a time, with the
    look (``--strength``, ``--preserve-color``) applied; each pass holding what it costs of a
    budget ``shared`` with other stylizers of the process (``budget_shared``), if any (a pass
    in tiles holds the whole of it: its tiles are sized to it)."""
    h, w = frames[0].shape[:2]
    styled = []
    for i in range(0, len(frames), per_pass):
        batch = frames[i:i + per_pass]
        with holding(shared, len(batch) * h * w * bytes_per_pixel):
            styled.extend(stylize_pass(batch))
    if strength == 1 and not preserve_color:
        return styled
    return [apply_look(f, s, strength, preserve_color) for f, s in zip(frames, styled)]


def to_network(frames: list[np.ndarray], low: float, high: float, multiple: int) -> np.ndarray:
    """uint8 RGB frames as the network's float32 (N, 3, H, W) input in its pixel range, padded
    at the bottom and right to its size multiple: reflected where the frame is large enough,
    repeated beyond (tiny frames, U-Nets)."""
    x = np.stack(frames).transpose(0, 3, 1, 2).astype(np.float32)
    x *= np.float32((high - low) / 255)
    x += np.float32(low)
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "edge"
        x = np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)
    return x


def from_network(y: np.ndarray, low: float, high: float, h: int, w: int) -> list[np.ndarray]:
    """The network's (N, 3, H', W') output cropped to h x w and back to uint8 RGB frames,
    rounded to the nearest level."""
    y = y[:, :, :h, :w] - np.float32(low)
    y /= np.float32((high - low) / 255)
    y += np.float32(0.5)
    planes = np.clip(y, 0, 255, out=y).astype(np.uint8)
    # OpenCV's merge of the three planes: a transposed view would leave every later reader (the
    # temporal step, the encoder) a strided copy to make, 1.1 ms a 848x360 frame in numpy
    # where the merge takes 0.04 ms
    return [cv2.merge([frame[0], frame[1], frame[2]]) for frame in planes]
