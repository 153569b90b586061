"""Errors a user can act on. Each carries the exit code the CLI returns for it."""


class FramestyleError(Exception):
    """A failure with a one-line, user-facing message."""

    exit_code = 1


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name if it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class InputError(FramestyleError):
    """Bad input: missing or unreadable file, not a video, unknown style, unreachable bucket."""

    exit_code = 2


class FieldError(InputError):
    """A job setting that is not valid. Names the field, so the CLI can name its flag."""

    def __init__(self, field: str, message: str):
        self.field, self.message = field, message
        super().__init__(f"{field}: {message}")

    def for_flags(self, flags: dict[str, str]) -> str:
        """The message with the field spelled as the command line spells it (``--max-side``)."""
        flag = flags.get(self.field) or "--" + self.field.replace("_", "-")
        return f"{flag}: {self.message}"


class JobBusyError(FramestyleError):
    """Another run of the same job holds its work prefix."""

    exit_code = 4
