"""How much of a stylization to keep, and whose colours: ``--strength`` and ``--preserve-color``.

Both act on each stylized frame against its input, right after the network (``Stylizer``) and
so before the temporal step, for every network and command alike:

* **preserve colour** keeps the input's colours: the stylized frame's luminance with the input's
  chroma, the luminance-only transfer of Gatys, Bethge, Hertzmann and Shechtman, *Preserving
  Color in Neural Artistic Style Transfer* (2016), in YCrCb (BT.601, as OpenCV defines it);
* **strength** S blends the result with the input: S x stylized + (1 - S) x input, so 0 is the
  input itself and 1 (the default) the network's output.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

# BT.601 luma weights of R, G and B: the Y of OpenCV's YCrCb
LUMA = (0.299, 0.587, 0.114)


def apply_look(original: np.ndarray, stylized: np.ndarray, strength: float = 1.0,
               preserve_color: bool = False) -> np.ndarray:
    """``stylized`` (H, W, 3 uint8 RGB) with ``original``'s colours and/or blended back into
    ``original`` (the same size)."""
    out = stylized
    if preserve_color:
        colours = cv2.cvtColor(original, cv2.COLOR_RGB2YCrCb)
        colours[..., 0] = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb)[..., 0]
        out = cv2.cvtColor(colours, cv2.COLOR_YCrCb2RGB)
    if strength < 1:
        out = cv2.addWeighted(out, strength, original, 1 - strength, 0)
    return out


def apply_look_to_tensors(original, stylized, strength: float = 1.0,
                          preserve_color: bool = False):
    """The same look on unit-range (N, 3, H, W) tensors, for training against a teacher's
    output (``train distill --strength/--preserve-color``). With the input's Cr and Cb kept,
    converting back from YCrCb adds the luminance difference to each of R, G and B alike."""
    out = stylized
    if preserve_color:
        luma = original.new_tensor(LUMA).view(1, 3, 1, 1)
        difference = ((stylized - original) * luma).sum(dim=1, keepdim=True)
        out = (original + difference).clamp(0, 1)
    if strength < 1:
        out = strength * out + (1 - strength) * original
    return out


def tensor_look(strength: float, preserve_color: bool):
    """``apply_look_to_tensors`` with these settings, for ``models.export.UnitRangeModel``; None
    where they leave the network's output as it is."""
    if strength == 1 and not preserve_color:
        return None
    return functools.partial(apply_look_to_tensors, strength=strength,
                             preserve_color=preserve_color)
