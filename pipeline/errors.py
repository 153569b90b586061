"""Errors a user can act on. Each carries the exit code the CLI returns for it."""


class FramestyleError(Exception):
    """A failure with a one-line, user-facing message."""

    exit_code = 1


class InputError(FramestyleError):
    """Bad input: missing or unreadable file, not a video, unknown style, unreachable bucket."""

    exit_code = 2
