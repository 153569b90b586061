"""Errors a user can act on. Each carries the exit code the CLI returns for it.

Exit codes (also in ``framestyle --help`` and docs/reliability.md):
0 success; 1 an unexpected failure (a bug: the traceback is printed); 2 bad input or usage,
nothing written; 3 some videos or images failed, the rest are done; 4 the same job is already
running; 5 storage or the cluster is unavailable, a re-run resumes; 6 no space left on a local
disk, a re-run resumes once there is; 130 interrupted (Ctrl-C), a re-run resumes.

Every error here is picklable with its message, so one raised in a Ray worker reaches the driver
as itself (Ray re-raises a task's exception on the driver), never as a serialization traceback.
"""

from __future__ import annotations

import errno


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

    def __reduce__(self):
        return type(self), (self.field, self.message)

    def for_flags(self, flags: dict[str, str]) -> str:
        """The message with the field spelled as the command line spells it (``--max-side``)."""
        flag = flags.get(self.field) or "--" + self.field.replace("_", "-")
        return f"{flag}: {self.message}"


class JobBusyError(FramestyleError):
    """Another run of the same job holds its work prefix."""

    exit_code = 4


class UnavailableError(FramestyleError):
    """Object storage or the cluster did not answer for longer than the retry budget. Nothing is
    wrong with the input: finished work is kept and a re-run resumes."""

    exit_code = 5


class DiskFullError(FramestyleError):
    """A local disk (work, temp or cache folder) is full or a file-size limit was reached."""

    exit_code = 6


# Faults of the job's surroundings, not of one input: every other input would meet them too, so
# they stop the whole job (a re-run resumes) instead of failing one video or image.
JOB_FAULTS = (UnavailableError, DiskFullError)

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def disk_full(error: BaseException, path: str | None = None) -> DiskFullError | None:
    """The one-line error for an ``OSError`` that means "no space", naming ``path`` (else the
    error's own); or None for any other error."""
    if not isinstance(error, OSError) or error.errno not in DISK_FULL_ERRNOS:
        return None
    path = path or error.filename or "a local disk"
    return DiskFullError(f"no space left writing {path} ({error.strerror or 'disk full'}); "
                         "free some space and re-run to resume")


def _causes(error: BaseException):
    """``error`` and what it wraps: Ray's task errors (``cause``), chained exceptions."""
    seen: set[int] = set()
    stack = [error]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack.extend([getattr(e, "cause", None), e.__cause__, e.__context__])


def as_user_error(error: BaseException) -> FramestyleError | None:
    """Our own error inside ``error`` (however Ray or a library wrapped it), or the one-line
    error for a known fault: a full disk, a dead worker or node. None for anything else: a bug,
    whose traceback the user should see."""
    causes = list(_causes(error))
    ours = [e for e in causes if isinstance(e, FramestyleError)]
    if ours:  # Ray's wrapper of a worker's error is an instance of it too: prefer the original
        return next((e for e in ours if not hasattr(e, "cause")), ours[0])
    for e in causes:
        if isinstance(e, OSError) and (full := disk_full(e)):
            return full
    lost = worker_lost(error)
    if lost is not None:
        return UnavailableError(f"a Ray worker was lost and its retries ran out "
                                f"({type(lost).__name__}: {first_line(lost)[:160]}); "
                                "re-run to resume")
    return None


# Ray's errors for a worker process or node that went away (matched by name: the core layer
# does not import Ray).
WORKER_LOSS = ("ActorDiedError", "WorkerCrashedError", "NodeDiedError", "RaySystemError",
               "OutOfMemoryError", "ObjectLostError", "ActorUnavailableError")


def worker_lost(error: BaseException) -> BaseException | None:
    """Ray's error inside ``error`` saying a worker or its node was lost, or None."""
    return next((e for e in _causes(error) if type(e).__name__ in WORKER_LOSS), None)
