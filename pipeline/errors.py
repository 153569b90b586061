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
