"""Export a style network for other runtimes: ONNX (optionally int8) or TorchScript.

Every exported model has the same contract whatever the architecture: input ``image``, float
RGB in [0, 1], shape (N, 3, H, W) with H and W multiples of the network's size multiple (4 for
most; 256 for a U-Net-256); output ``stylized``, same shape and range. The style (built-in
weights) is baked in, and so is the look (``--strength``, ``--preserve-color``).

InstanceNorm exports as ONNX ``InstanceNormalization`` only in eval mode without running
statistics; the networks here are put in eval mode first, and the test suite checks
onnxruntime against PyTorch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class UnitRangeModel(nn.Module):
    """[0, 1] RGB in and out around a network with its own pixel range and condition; ``look``
    (input, output) -> output, if given, is applied to the result (``--strength``,
    ``--preserve-color``: ``pipeline.look.apply_look_to_tensors``), and is traced with it."""

    def __init__(self, model: nn.Module, pixels: tuple[float, float],
                 condition: torch.Tensor | None,
                 look: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        super().__init__()
        self.model = model.eval()
        self.low, self.span = pixels[0], pixels[1] - pixels[0]
        self.conditioned = condition is not None
        self.register_buffer("condition", condition if condition is not None else torch.zeros(0))
        self.look = look

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image * self.span + self.low
        y = self.model(x, self.condition) if self.conditioned else self.model(x)
        y = ((y - self.low) / self.span).clamp(0, 1)
        return y if self.look is None else self.look(image, y)


OPSET = 17  # pipeline.onnx_engine.EXPORT_VERSION keys exports made with it: bump it too


def to_onnx(model: nn.Module, samples: tuple[torch.Tensor, ...], path: str | Path,
            input_names: list[str], output_name: str) -> Path:
    """``model`` traced on ``samples`` into an ONNX file whose first input and output take any
    batch and frame size; any further inputs (a style vector) keep their shapes."""
    axes = {0: "n", 2: "h", 3: "w"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(model.eval(), samples, str(path), input_names=input_names,
                          output_names=[output_name], opset_version=OPSET, dynamo=False,
                          dynamic_axes={input_names[0]: axes, output_name: axes})
    return Path(path)


def export_onnx(wrapper: UnitRangeModel, path: str | Path, dtype: str = "fp32",
                sample_size: tuple[int, int] = (256, 256)) -> Path:
    sample = torch.rand(1, 3, *sample_size, dtype=DTYPES[dtype])
    return to_onnx(wrapper.to(DTYPES[dtype]), (sample,), path, ["image"], "stylized")


def export_torchscript(wrapper: UnitRangeModel, path: str | Path, dtype: str = "fp32",
                       sample_size: tuple[int, int] = (256, 256)) -> Path:
    path = Path(path)
    model = wrapper.to(DTYPES[dtype]).eval()
    sample = torch.rand(1, 3, *sample_size, dtype=DTYPES[dtype])
    with torch.inference_mode():
        traced = torch.jit.trace(model, sample, check_trace=False)
    traced.save(str(path))
    return path


def quantize_int8(fp32_path: str | Path, int8_path: str | Path,
                  calibration: Iterable[np.ndarray]) -> Path:
    """Static int8 quantization for CPU, calibrated on frames (H, W, 3 uint8) that look like
    what the model will see. Convolutions only, QDQ, per-channel weights: normalisation layers
    stay in float, which measured best in both quality and speed (benchmarks/int8.py)."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Frames(CalibrationDataReader):
        def __init__(self):
            self._it = (
                {"image": (f.astype(np.float32) / 255).transpose(2, 0, 1)[None]}
                for f in calibration)

        def get_next(self):
            return next(self._it, None)

    quantize_static(str(fp32_path), str(int8_path), Frames(), quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=["Conv"], per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return Path(int8_path)
