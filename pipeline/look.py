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

import cv2
import numpy as np


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
