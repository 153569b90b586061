"""One image, on this machine: read -> decode -> stylize -> encode -> write."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from pydantic import Field, model_validator

from ..core import storage
from ..core.errors import FieldError, InputError
from .image_decode import ImageError, decode_image
from .image_job import ImageSettings


class ImageFileJob(ImageSettings):
    """One image file (local or s3://) to another; OUT's extension sets the format."""

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)

    @model_validator(mode="after")
    def _writable_output(self):
        from PIL import Image

        suffix = Path(storage.basename(self.output)).suffix.lower()
        if suffix not in Image.registered_extensions():
            raise FieldError("output", f"cannot tell the image format of {self.output}: use "
                             ".png, .jpg, .webp…")
        if storage.contains(self.input, self.output):
            raise FieldError("output", f"{self.output} is the input image: refusing to "
                             "overwrite it")
        return self


def run_image_file_job(job: ImageFileJob) -> dict:
    from PIL import Image

    from .stylize import Stylizer

    started = time.monotonic()
    style = job.resolve_style()
    storage.storage_for(job.output).check_writable(job.output)
    source = storage.fetch(job.input, storage.require(job.input))
    pixels = load_rgb(source, job.input, job.max_side)
    out = Stylizer(style, job.inference)([pixels])[0]
    with tempfile.TemporaryDirectory(prefix="framestyle-image-") as tmp:
        local = os.path.join(tmp, "out" + Path(storage.basename(job.output)).suffix.lower())
        Image.fromarray(out).save(local)
        storage.storage_for(job.output).upload(local, job.output)
    return {"input": job.input, "output": job.output, "width": int(out.shape[1]),
            "height": int(out.shape[0]), "style": job.style,
            "seconds": round(time.monotonic() - started, 3)}


def load_rgb(path: str, name: str, max_side: int | None):
    """An RGB array, upright (EXIF orientation applied), alpha composited on white."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode_image(data, max_side).rgb
    except ImageError as e:
        raise InputError(f"not a readable image: {name} ({e})") from None
