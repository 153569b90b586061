"""One image, on this machine: read -> decode -> stylize -> encode -> write, through the same
decode, stylize and encode functions as the images job, so both write the same bytes."""

from __future__ import annotations

import time

from pydantic import Field, model_validator

from ..core import storage
from ..core.errors import FieldError, InputError
from .image_decode import DEFAULT_MAX_MEGAPIXELS, DecodedImage, ImageError, decode_image
from .image_encode import encode_image, format_of
from .image_job import ImageSettings


class ImageFileJob(ImageSettings):
    """One image file (local or s3://) to another; OUT's extension sets the format."""

    input: str = Field(min_length=1)
    output: str = Field(min_length=1)

    @model_validator(mode="after")
    def _writable_output(self):
        if format_of(storage.basename(self.output)) is None:
            raise FieldError("output", f"cannot tell the image format of {self.output}: use "
                             ".png, .jpg, .webp, .heic, .avif…")
        if storage.contains(self.input, self.output):
            raise FieldError("output", f"{self.output} is the input image: refusing to "
                             "overwrite it")
        return self


def run_image_file_job(job: ImageFileJob) -> dict:
    from .onnx_stylizer import make_stylizer
    from .temporal import stylize_frames

    started = time.monotonic()
    style = job.resolve_style()
    storage.storage_for(job.output).check_writable(job.output)
    source = storage.fetch(job.input, storage.require(job.input))
    image = load_image(source, job.input, job.max_side, job.max_megapixels)
    frames = stylize_frames(make_stylizer(style, job.inference), list(image.frames), job.temporal)
    data = encode_image(frames, format_of(storage.basename(job.output)),
                        None if image.alphas is None else list(image.alphas), image.animation,
                        None if job.strip_metadata else image.metadata)
    storage.storage_for(job.output).put_bytes(data, job.output)
    return {"input": job.input, "output": job.output, "width": int(frames[0].shape[1]),
            "height": int(frames[0].shape[0]), "frames": len(frames), "style": job.style,
            "seconds": round(time.monotonic() - started, 3)}


def load_image(path: str, name: str, max_side: int | None,
               max_megapixels: float = DEFAULT_MAX_MEGAPIXELS) -> DecodedImage:
    """The decoded image at local ``path``; a one-line InputError naming ``name`` if it is not
    one."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return decode_image(data, max_side, max_megapixels)
    except ImageError as e:
        raise InputError(f"not a readable image: {name} ({e})") from None


def load_rgb(path: str, name: str, max_side: int | None):
    """An RGB array, upright (EXIF orientation applied), alpha composited on white."""
    return load_image(path, name, max_side).rgb
