"""Job specifications: validated, immutable settings objects (pydantic).

Every job object (video, image, images) is a ``Spec``. Constructing one validates every field,
and a bad value raises ``FieldError`` naming the field, so the command line can map it back to
its flag and a job file (later) to its key.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import FieldError


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def __init__(self, **data: Any):
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise field_error(e) from None


def field_error(error: ValidationError) -> FieldError:
    """The first problem of a ValidationError, as a one-line FieldError."""
    first = error.errors()[0]
    field = str(first["loc"][-1]) if first["loc"] else "spec"
    message = first["msg"].removeprefix("Value error, ")
    message = message[0].lower() + message[1:]
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] not in ("missing", "value_error") and "input" in first:
        message += f" (got {first['input']!r})"
    result = FieldError(field, message)
    result.loc = tuple(first["loc"])  # the whole path, for job files' nested settings
    return result
