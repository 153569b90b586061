"""The stylizer: batches of frames through whichever network a resolved style names."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from ..core.errors import FieldError
from ..models import hub
from ..models.hub import ModelRef
from ..models.tiling import (OVERLAP, stopped_bytes, tiled_forward, tiled_forward_in_step,
                             tiles_and_area)
from .inference import InferenceOptions
from .memory import worker_budget
from .onnx_engine import OnnxNetwork
from .onnx_stylizer import OnnxStylizer, budget_shared, frames_per_pass, in_passes

# uint8 in and out, the float input and output of the network: held whole even when tiled
WHOLE_FRAME_BYTES_PER_PIXEL = 2 * 3 + 2 * 3 * 4
# Tiles smaller than this would show seams (a network's receptive field spans ~100 pixels) and
# re-run the early layers too often: a frame that needs smaller ones fails instead.
MIN_BUDGET_TILE = 256
# Larger tiles in step ran slower: a 24 MP photo took 34.6 s in 3000-pixel tiles, 16.7-20.0 s in
# tiles of 768 to 2088 (the built-in network, 2 cores; most of the difference was the kernel
# zeroing fresh pages for larger tensors)
MAX_IN_STEP_TILE = 2048
# Tiles in step take a thread each, stopped in turn: past this (a 24 MP photo at --max-tile 256
# is 1,426 tiles) they re-run instead
MAX_IN_STEP_TILES = 256
UNINSPECTABLE_BYTES_PER_PIXEL = 1024  # twice what the largest networks we ship measure
# cuDNN has no tensor-core kernel for a convolution over 3 channels in fp16/bf16 and falls back
# to a general one: on an H200, 57 of the 200 ms of a 16-frame 1080p batch of the built-in
# network went to its first 9x9 convolution (benchmarks.gpu). Over 8 channels, 5 of them zero,
# it runs on tensor cores.
TENSOR_CORE_CHANNELS = 8


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def pick_engine(options: InferenceOptions, device: torch.device, dtype: torch.dtype,
                inspectable: bool) -> str:
    """"onnxruntime" or "torch", as ``options.engine`` asks. "auto" is onnxruntime on a CPU in
    fp32 without --compile, where it ran every network we ship as fast as eager PyTorch or
    faster (``benchmarks.engines``, one thread as in a CPU actor, 640x360: 2.7x the built-in
    network, 1.6x TransformerNet, 1.2x CycleGAN's ResNet, within 3% on pix2pix's U-Net, both
    ways between runs), and PyTorch everywhere else."""
    fits = device.type == "cpu" and dtype == torch.float32 and inspectable
    if options.engine == "onnxruntime" and not fits:
        raise FieldError("engine", "onnxruntime runs fp32 PyTorch modules on CPUs here; "
                                   "use auto or torch")
    if options.engine != "auto":
        return options.engine
    return "onnxruntime" if fits and not options.compile else "torch"


class Stylizer:
    """Frames (H, W, 3 uint8) in, stylized frames of the same size out, a batch at a time.

    Frames are reflect-padded to the size multiple the network needs (4 for two stride-2
    stages) and cropped back; pixel values are mapped to the network's range and back. On a GPU
    the model runs in fp16 (or as ``options`` say) with channels_last memory. Frames larger
    than ``max_tile`` run in overlapping tiles with whole-image normalisation statistics
    (``models.tiling``).

    Memory is budgeted (``pipeline.memory``): the network's cost per pixel is measured once, on a
    small probe, and frames go through in passes that fit the budget; a frame that does not fit
    alone runs in tiles sized to it. A frame whose whole-size tensors alone exceed the budget
    raises ``MemoryError`` with the sizes, before anything is allocated.
    """

    def __init__(self, style: ModelRef, options: InferenceOptions = InferenceOptions(),
                 device: torch.device | None = None, threads: int | None = None):
        self.device = device or pick_device()
        self.max_tile = options.max_tile
        self.dtype = options.torch_dtype(self.device)
        self.low, self.high = style.arch.pixels
        self.multiple = style.multiple
        model = hub.load(style).to(self.device, self.dtype)
        on_tensor_cores = self.device.type == "cuda" and self.dtype != torch.float32
        if on_tensor_cores and not isinstance(model, torch.jit.ScriptModule):
            widen_rgb_convs(model)
        self.channels_last = options.channels_last if options.channels_last is not None \
            else self.device.type == "cuda"
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        # TorchScript modules take no hooks: their cost is assumed, and they are never tiled
        self.inspectable = not isinstance(self.model, torch.jit.ScriptModule)
        self.engine = pick_engine(options, self.device, self.dtype, self.inspectable)
        self.condition = None
        self.onnx: OnnxStylizer | None = None  # untiled onnxruntime passes
        self.strength, self.preserve_color = style.strength, style.preserve_color
        if style.condition is not None:
            self.restyle(style)
        self.budget = options.memory_budget or worker_budget(self.device)
        self.shared, self.whole_budget = budget_shared(options, self.budget)
        self.bytes_per_pixel = self._measure_bytes_per_pixel()
        self.stopped_bytes_per_pixel = self._measure_stopped_bytes_per_pixel()
        # Tiling hooks the module's norm layers, which neither a compiled graph nor onnxruntime
        # would run: tiled frames always go through the eager module (``_stylize``).
        if self.engine == "onnxruntime":
            # threads: onnxruntime's own, for replicas that share a process; else PyTorch's
            # setting, which Ray sets to a worker's CPUs. The export records the cost per
            # pixel, so that later stylizers on this node need no PyTorch (``onnx_stylizer``),
            # and untiled passes run through the same code as theirs: the same frames.
            self.forward = OnnxNetwork.exported(style, self.model,
                                                threads or torch.get_num_threads(),
                                                bytes_per_pixel=self.bytes_per_pixel)
            self.onnx = OnnxStylizer(style, self.forward, options, self.bytes_per_pixel,
                                     self.budget)
        elif options.compile and not options.max_tile:
            self.forward = torch.compile(self.model, dynamic=False)
        else:
            self.forward = self.model
        # A compiled graph is built, and on a GPU each convolution's kernel chosen, per batch
        # shape: passes are padded to a few sizes so that a chunk's odd last batch reuses them.
        self.fixed_shapes = self.device.type == "cuda" or self.forward is not self.model \
            and self.engine == "torch"
        self.tiled_frames = 0  # frames that ran in tiles because they did not fit the budget

    def restyle(self, style: ModelRef) -> None:
        """Switch to another mix of the built-in styles without reloading the network."""
        if style.condition is None:
            raise ValueError("restyle works between built-in styles only")
        self.condition = torch.tensor(style.condition, device=self.device, dtype=self.dtype)
        if self.onnx is not None:
            self.onnx.restyle(style)

    def __call__(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Stylize ``frames`` (all of one size), as many per forward pass as the budget holds."""
        if not frames:
            return []
        per_pass = frames_per_pass(self.budget, self.bytes_per_pixel, frames[0])
        return in_passes(frames, per_pass, lambda batch: self._stylize_padded(batch, per_pass),
                         self.strength, self.preserve_color, self.shared, self.bytes_per_pixel)

    @torch.no_grad()
    def _measure_bytes_per_pixel(self) -> float:
        """Peak bytes per input pixel of a forward pass: twice the largest layer's input plus
        output (eager PyTorch frees each layer's input after it; twice covers a residual
        block's skip and the allocator), plus the whole-frame tensors around it."""
        if not self.inspectable:
            return UNINSPECTABLE_BYTES_PER_PIXEL
        largest = [0]

        def hook(module, args, output):
            tensors = [t for t in args if torch.is_tensor(t)] + [output]
            largest[0] = max(largest[0], sum(t.numel() * t.element_size() for t in tensors
                                             if torch.is_tensor(t)))

        leaves = [m for m in self.model.modules() if not any(m.children())]
        handles = [m.register_forward_hook(hook) for m in leaves]
        probe = self._probe()
        try:
            self._run(probe, self.model)  # eager: a compiled forward would compile for it
        finally:
            for handle in handles:
                handle.remove()
        return 2 * largest[0] / probe[0, 0].numel() + WHOLE_FRAME_BYTES_PER_PIXEL

    @torch.no_grad()
    def _measure_stopped_bytes_per_pixel(self) -> float:
        """What a tile's pass holds per pixel while stopped at a norm layer in
        ``tiled_forward_in_step``, measured on a small probe (0 for TorchScript, never tiled)."""
        if not self.inspectable:
            return 0.0
        probe = self._probe()
        return stopped_bytes(lambda t: self._run(t, self.model), self.model,
                             probe)[0] / probe[0, 0].numel()

    def _probe(self) -> torch.Tensor:
        """The frame a network's memory per pixel is measured on: 64 pixels a side, or two of
        its size multiples. A pix2pix U-Net's multiple is 256 pixels: at 16 multiples, as
        before, its probe was a 4096x4096 frame, 38 s and 6.5 GB for a stylizer to start, and
        at 512 or 1024 pixels it counts the same bytes a pixel."""
        side = max(64, 2 * self.multiple)
        return torch.zeros(1, 3, side, side, device=self.device, dtype=self.dtype)

    def _tiles_for(self, h: int, w: int) -> tuple[int, bool] | None:
        """How a frame of h x w runs: None (whole), or (tile side, in step): in step
        (``tiled_forward_in_step``, one pass) where every tile's stopped pass fits the budget
        beside one tile's working memory, else tiles re-run up to each norm layer
        (``tiled_forward``: one tile's memory). The tiles: the user's ``max_tile``, else the
        largest that fit."""
        budget = self.whole_budget  # its own, or all that stylizers sharing a process have
        if self.max_tile and max(h, w) > self.max_tile:
            return self.max_tile, self._in_step_fits(h, w, self.max_tile, budget)
        if h * w * self.bytes_per_pixel <= budget:
            return None
        if not self.inspectable:  # tiling needs the norm layers' hooks
            raise MemoryError(f"a {w}x{h} frame does not fit this worker's memory budget "
                              f"({budget / 2**20:,.0f} MiB), and a TorchScript model "
                              "cannot run in tiles")
        side = self._in_step_tile(h, w, budget)
        if side:
            return side, True
        return self._tile_for(h, w, budget), False

    def _in_step_fits(self, h: int, w: int, tile: int, budget: float) -> bool:
        """Whether ``tiled_forward_in_step`` in ``tile``-pixel tiles fits ``budget`` (the
        whole-frame tensors, every tile's stopped pass over the tiles' area, overlaps included,
        and one tile's working memory) in at most ``MAX_IN_STEP_TILES`` tiles, a thread each."""
        tiles, area = tiles_and_area(h, w, tile, multiple=self.multiple)
        need = (h * w * WHOLE_FRAME_BYTES_PER_PIXEL + area * self.stopped_bytes_per_pixel
                + min(h, tile) * min(w, tile) * self.bytes_per_pixel)
        return need <= budget and tiles <= MAX_IN_STEP_TILES

    def _in_step_tile(self, h: int, w: int, budget: float) -> int | None:
        """The tile side with which the frame runs in step within ``budget`` computing least
        (the tiles' area, overlaps included), if one of at least ``MIN_BUDGET_TILE`` does.
        The sides tried are those that split a side into k tiles with the least overlap:
        tiles are spread evenly, so a side just over a split overlaps by up to a tile."""
        overlap, m = OVERLAP, self.multiple
        sides = {-(-(-(-(size - overlap) // k) + overlap) // m) * m
                 for size in (h, w) for k in range(1, max(h, w) // MIN_BUDGET_TILE + 1)}
        fitting = [(tiles_and_area(h, w, side, overlap, m)[1], -side) for side in sides
                   if MIN_BUDGET_TILE <= side <= MAX_IN_STEP_TILE
                   and self._in_step_fits(h, w, side, budget)]
        return -min(fitting)[1] if fitting else None

    def _tile_for(self, h: int, w: int, budget: float) -> int:
        """The tile side for ``tiled_forward``: the largest whose working memory fits beside
        the whole-frame tensors; MemoryError if none of at least ``MIN_BUDGET_TILE`` does."""
        fixed = h * w * WHOLE_FRAME_BYTES_PER_PIXEL
        side = int(math.sqrt(max(0.0, budget - fixed) / self.bytes_per_pixel))
        if side < MIN_BUDGET_TILE:
            need = fixed + MIN_BUDGET_TILE ** 2 * self.bytes_per_pixel
            raise MemoryError(f"a {w}x{h} frame needs {need / 2**20:,.0f} MiB even in tiles; "
                              f"this worker's memory budget is {budget / 2**20:,.0f} MiB")
        return side - side % self.multiple

    def _stylize_padded(self, frames: list[np.ndarray], per_pass: int) -> list[np.ndarray]:
        """``_stylize``, with the pass padded (repeating its last frame) to ``pass_size``."""
        size = pass_size(len(frames), per_pass) if self.fixed_shapes else len(frames)
        return self._stylize(frames + frames[-1:] * (size - len(frames)))[:len(frames)]

    @torch.inference_mode()
    def _stylize(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        h, w = frames[0].shape[:2]
        tiles = self._tiles_for(h, w)  # first: a frame that cannot fit fails before allocating
        if self.onnx is not None and not tiles:
            return self.onnx.stylize_pass(frames)
        batch = self._upload(frames)
        scale = (self.high - self.low) / 255
        x = batch.permute(0, 3, 1, 2).to(self.dtype).mul_(scale).add_(self.low)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if tiles:
            self.tiled_frames += len(frames)
            tile, in_step = tiles
            forward = tiled_forward_in_step if in_step else tiled_forward
            y = forward(lambda t: self._run(t, self.model), self.model, x, tile,
                        multiple=self.multiple)
        else:
            y = self._run(x)
        y = y.float().sub_(self.low).div_(scale)
        out = y.add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return interleaved(self._download(out).numpy())

    def _upload(self, frames: list[np.ndarray]) -> torch.Tensor:
        """The frames as one uint8 tensor on the device; through page-locked memory to a GPU,
        which copies several times faster than from pageable memory."""
        if self.device.type != "cuda":
            return torch.from_numpy(np.stack(frames))
        staged = torch.empty((len(frames), *frames[0].shape), dtype=torch.uint8,
                             pin_memory=True)
        np.stack(frames, out=staged.numpy())
        return staged.to(self.device, non_blocking=True)

    def _download(self, out: torch.Tensor) -> torch.Tensor:
        """``out`` on the host; from a GPU into page-locked memory (a 16-frame 1080p batch
        took 56 ms to copy into pageable memory on an H200, a quarter of the batch's time)."""
        if self.device.type != "cuda":
            return out.cpu()
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        host.copy_(out.contiguous())
        return host

    def _run(self, x: torch.Tensor, forward=None) -> torch.Tensor:
        """The network (``forward``, by default the one set up for inference) on ``x``, padded
        to its size multiple and cropped back."""
        forward = forward or self.forward
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            # reflect padding needs pad < size; replicate covers the rest (tiny frames, U-Nets)
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = torch.nn.functional.pad(x, [0, pw, 0, ph], mode=mode)
        y = forward(x) if self.condition is None else forward(x, self.condition)
        return y[:, :, :h, :w]


def pass_size(frames: int, per_pass: int) -> int:
    """The batch ``frames`` frames run as where shapes are fixed: the next power of two, at
    most ``per_pass`` (what the memory budget holds). A job's passes take at most
    log2(per_pass) + 1 shapes, and the padding costs less than the frames themselves."""
    return min(per_pass, 1 << max(0, frames - 1).bit_length())


def interleaved(frames: np.ndarray) -> list[np.ndarray]:
    """(N, H, W, 3) uint8 frames as C-contiguous arrays. The network's output is planar (N, 3,
    H, W) on the CPU, and its permuted view gives every later reader (the temporal step, the
    encoder) a strided copy to make: 1.1 ms a 848x360 frame in numpy, where OpenCV's merge of
    the three contiguous planes takes 0.04 ms."""
    if frames.flags.c_contiguous:  # already interleaved: channels-last, or copied off a GPU
        return list(frames)
    return [cv2.merge([frame[..., 0], frame[..., 1], frame[..., 2]]) for frame in frames]


class _WideRGBConv(torch.nn.Conv2d):
    """A convolution over 3 channels run as one over more, the extra ones zero: the same
    result, on tensor cores (TENSOR_CORE_CHANNELS). A Conv2d itself, so a network that reads its
    layer's kernel_size or stride (models.arbitrary) still can."""

    def __init__(self, conv: torch.nn.Conv2d, channels: int):
        super().__init__(channels, conv.out_channels, conv.kernel_size, conv.stride,
                         conv.padding, conv.dilation, bias=conv.bias is not None,
                         padding_mode=conv.padding_mode, device=conv.weight.device,
                         dtype=conv.weight.dtype)
        with torch.no_grad():
            self.weight.zero_()
            self.weight[:, :conv.in_channels] = conv.weight
            if conv.bias is not None:
                self.bias.copy_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) \
            and not x.is_contiguous() else torch.contiguous_format
        wide = torch.empty((n, self.in_channels, h, w), device=x.device, dtype=x.dtype,
                           memory_format=layout)
        wide[:, c:].zero_()
        wide[:, :c].copy_(x)
        return super().forward(wide)


def widen_every_layer(model: torch.nn.Module, channels: int = TENSOR_CORE_CHANNELS) -> int:
    """Beyond ``widen_rgb_convs``: round every layer of a network that can widen its own
    (``widen_channels``: the built-in network, whose last layers run 8 -> 4 -> 3 channels at
    full size) up to a multiple of ``channels``; returns how many layers changed. Not on by
    default: ``benchmarks.gpu`` measures it side by side with the RGB widening alone."""
    return model.widen_channels(channels) if hasattr(model, "widen_channels") else 0


def keep_norm_layout(model: torch.nn.Module) -> int:
    """Have every style norm of ``model`` compute in its input's memory layout
    (``styled_instance_norm``'s ``keep_layout``: no NCHW copy of channels_last activations);
    returns how many. Not on by default: ``benchmarks.gpu`` measures it side by side."""
    norms = [m for m in model.modules() if hasattr(m, "keep_layout")]
    for norm in norms:
        norm.keep_layout = True
    return len(norms)


def widen_rgb_convs(model: torch.nn.Module, channels: int = TENSOR_CORE_CHANNELS) -> int:
    """Replace each plain convolution over 3 channels in ``model`` by one over ``channels``
    with zero weights for the extra ones (the same output), and widen the layers that can
    widen themselves (``widen_input``, for convolutions written functionally); returns how
    many were widened."""
    own = [m for m in model.modules() if hasattr(m, "widen_input") and m.w.shape[1] == 3]
    for module in own:
        module.widen_input(channels)
    targets = [(name, module) for name, module in model.named_modules()
               if type(module) is torch.nn.Conv2d and module.in_channels == 3
               and module.groups == 1]
    for name, conv in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, _WideRGBConv(conv, channels))
    return len(own) + len(targets)
