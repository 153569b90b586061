"""How to run a style network: precision, torch.compile, tiling. Torch-free to import, so the
job modules that carry these options to Ray workers do not load torch where it is not used."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..core.spec import Spec

MIN_TILE = 64
# CPUs an image job's GPU stylizer holds by default: its frames come decoded and leave to be
# encoded by the job's own read and write stages, which need CPUs of the same nodes
IMAGE_CPUS_PER_GPU = 2.0


class InferenceOptions(Spec):
    """How to run the network: engine, precision, torch.compile, and tiling for big frames."""

    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on a GPU, else fp32
    # auto: onnxruntime on a CPU (the same network, several times faster there), PyTorch on a GPU
    # or where onnxruntime cannot take the model (TorchScript, --compile, fp16/bf16)
    engine: Literal["auto", "torch", "onnxruntime"] = "auto"
    channels_last: bool | None = None  # NHWC memory for the network; None: on GPUs only
    compile: bool = False  # torch.compile: faster after a one-off compile per frame size
    # (ignored with max_tile)
    max_tile: int | None = Field(None, ge=MIN_TILE)  # larger frames run in tiles (models.tiling)
    # Bytes a stylizer may use; None: its share of its node (pipeline.memory). Frames that do not
    # fit run in tiles. Not part of a job's identity: tiles give the same pixels (models.tiling).
    memory_budget: int | None = Field(None, gt=0)
    # How many stylizers on threads of one process share its memory (``sharing_process``): each
    # sizes its passes to ``memory_budget``, its share, but a frame over that share and within
    # all of theirs runs whole, once the others leave it room (``memory.SharedBudget``), rather
    # than in tiles, which cost many times the time (a 12 MP photo: minutes instead of seconds)
    replicas_sharing: int = Field(1, ge=1)
    # CPUs each GPU stylizer actor holds for its host side (decode, flow, encode): a GPU is only
    # as fast as the host feeds it (benchmarks.host_ceiling measures what a share can feed).
    # None: a video job's actor takes its GPU's share of its node's CPUs
    # (``cluster.gpu_share_of_cpus``), an image job's ``IMAGE_CPUS_PER_GPU``
    cpus_per_gpu: float | None = Field(None, gt=0)

    def sharing_process(self, replicas: int) -> InferenceOptions:
        """These options for one of ``replicas`` stylizers on threads of one process outside Ray
        (each would otherwise budget the whole machine's share for itself)."""
        if self.memory_budget:
            return self
        from .memory import process_budget

        return self.model_copy(update={"memory_budget": process_budget(replicas),
                                       "replicas_sharing": replicas})

    def torch_dtype(self, device):
        import torch

        if self.dtype == "auto":
            return torch.float16 if device.type == "cuda" else torch.float32
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.dtype]
