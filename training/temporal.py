"""``temporal``: a TransformerNet learns not to flicker (Gao et al., *ReCoNet: Real-time Coherent
Video Style Transfer Network*, 2018), so that it needs no flow step at inference.

Fine-tunes ``--init`` (a TransformerNet checkpoint or published NAME[@V]) on consecutive frame
pairs of training videos (``video_pairs``: local, ``s3://``, archives), with optical flow and
occlusion masks from OpenCV computed in a Ray Data stage (DIS, or TV-L1), not by a flow network:

* ReCoNet's **output-level** temporal loss: where the flow holds, the output may change between
  frames only as much as the input's luminance does;
* its **feature-level** temporal loss: the encoder's features (after the residual blocks) of
  frame t match frame t-1's warped along the flow;
* a **keep** loss standing in for ReCoNet's perceptual style and content losses: the outputs
  stay those of the starting network (pixel L1 plus image-gradient L1, as ``distill``), so the
  style is kept without VGG weights.

Measure the result with ``framestyle eval flicker`` on a video stylized ``--temporal 0``.
"""

from __future__ import annotations

import copy
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from ..core.errors import FieldError, InputError
from ..core.spec import Spec
from ..models import hub
from . import video_pairs
from .data import pass_repeats
from .losses import feature_temporal_loss, gradient_l1, output_temporal_loss
from .recipe import Product, Recipe

ARCH = "transformer_net"


class Options(Spec):
    init: str = Field(description="the TransformerNet to fine-tune: a checkpoint or NAME[@V]")
    output_weight: float = Field(10.0, ge=0, description="weight of the output-level temporal "
                                                         "loss")
    feature_weight: float = Field(1.0, ge=0, description="weight of the feature-level temporal "
                                                         "loss")
    keep_weight: float = Field(1.0, ge=0, description="weight of staying close to the starting "
                                                      "network's output (its style)")
    flow: Literal["dis", "tvl1"] = Field("dis", description="OpenCV optical flow for the pairs")
    pairs_per_video: int = Field(8, ge=1, le=1000, description="frame pairs a video gives per "
                                                               "pass")
    frame_gap: int = Field(1, ge=1, le=30, description="frames between a pair's two frames")


class Temporal(Recipe):
    Options = Options
    batch_size = 2
    lr = 1e-4  # fine-tuning a trained network (ReCoNet trains from scratch at 1e-3)
    paired = True  # a row is frame t | frame t + gap, as batch["a"], batch["b"]
    jitter = 1.25

    @classmethod
    def prepare(cls, settings, options: Options) -> dict:
        ref = _init_ref(options)
        return {"state": hub.load(ref).state_dict(), "config": ref.config}

    def build(self, prepared: dict) -> None:
        from ..models.transformer_net import TransformerNet

        net = TransformerNet(**prepared["config"])
        net.load_state_dict(prepared["state"])
        self.teacher = copy.deepcopy(net).to(self.device).eval().requires_grad_(False)
        self.nets["generator"] = net.to(self.device)
        self.adam("generator", net.parameters(), betas=(0.9, 0.999))

    def step(self, batch):
        previous, current = batch["a"], batch["b"]
        frames = torch.cat([previous, current])
        styled, features = self.nets["generator"](frames * 255, with_features=True)
        styled = styled / 255
        with torch.no_grad():
            target = self.teacher(frames * 255) / 255
        o = self.options
        keep = o.keep_weight * (F.l1_loss(styled, target) + gradient_l1(styled, target))
        out_prev, out = styled.chunk(2)
        features_prev, features_now = features.chunk(2)
        flow, mask = batch["flow"], batch["mask"]
        output = o.output_weight * output_temporal_loss(out_prev, out, previous, current, flow,
                                                        mask)
        feature = o.feature_weight * feature_temporal_loss(features_prev, features_now, flow,
                                                           mask)
        loss = keep + output + feature
        optimizer = self.optimizers["generator"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return {"keep": keep.item(), "output_temporal": output.item(),
                "feature_temporal": feature.item(), "total": loss.item()}

    @torch.no_grad()
    def samples(self, batch):
        x = batch["b"]
        return [x, self.teacher(x * 255) / 255,
                (self.net("generator")(x * 255) / 255).clamp(0, 1)]

    @classmethod
    def products(cls, settings, options: Options) -> list[Product]:
        return [Product("generator", ARCH, _init_ref(options).config)]

    @classmethod
    def preflight(cls, units, augment, flag: str, options: Options) -> None:
        video_pairs.preflight(units, flag)

    @classmethod
    def dataset(cls, units, augment, options: Options, rows_per_step: int):
        import ray.data

        repeats = pass_repeats(units, rows_per_step, options.pairs_per_video)
        return (ray.data.from_items([u.to_row() for u in units] * repeats,
                                    override_num_blocks=min(len(units) * repeats, 64))
                .flat_map(video_pairs.pair_rows,
                          fn_kwargs={"augment": augment, "pairs": options.pairs_per_video,
                                     "gap": options.frame_gap})
                .map(video_pairs.with_flow, fn_kwargs={"method": options.flow}))


def _init_ref(options: Options) -> hub.ModelRef:
    try:
        ref = hub.resolve(options.init)
    except InputError as e:
        raise FieldError("init", str(e)) from None
    if ref.arch.name != ARCH:
        raise FieldError("init", f"{options.init} is a {ref.arch.name} network; the temporal "
                                 f"recipe fine-tunes a {ARCH}")
    return ref
