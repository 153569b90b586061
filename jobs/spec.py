"""Job spec files (YAML): one job or a list, validated before anything runs.

    kind: video                       # video | images | train (KINDS)
    inputs: [s3://bucket/clips/]      # one URI or a list
    output: s3://bucket/styled/
    style: builtin:7
    options: {height: 360, temporal: 0.7}

A file holds one such mapping, a list of them, or ``jobs: [...]``. Each kind's command module
says how its spec keys map to its job's fields (``SPEC_KEYS``) and builds the job
(``spec_job``), whose own pydantic validation checks every value; an error is reported with
the spec's spelling of the field and its line (``spec.yaml:7: jobs[1].options.height: ...``).
Unknown keys are errors. Relative local paths are taken relative to the spec file's folder.

The spec's identity (``Spec.submission_id``) is a hash of its normalized jobs, so the same spec
submitted twice is recognised as the same work.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from ..core import storage
from ..core.errors import FieldError, InputError
from ..core.hashing import identity_hash
from . import images, train, video

# kind -> command module with SPEC_KEYS ({spec key: job field}), spec_job(fields) -> job,
# run_spec_job(job, address, progress) -> summary, summary_line(summary) and exit_code(summary).
KINDS = {"video": video, "images": images, "train": train}
PATH_KEYS = ("inputs", "inputs_b", "output")  # spec keys holding URIs or local paths


@dataclass(frozen=True)
class SpecJob:
    kind: str
    entry: dict  # as written, relative paths resolved
    job: object  # the validated job of the kind

    def run(self, address: str | None, progress: bool = True) -> dict:
        return KINDS[self.kind].run_spec_job(self.job, address, progress)


@dataclass(frozen=True)
class JobSpec:
    source: str  # where it was read from, for messages
    jobs: list[SpecJob]

    @property
    def entries(self) -> list[dict]:
        return [j.entry for j in self.jobs]

    @property
    def submission_id(self) -> str:
        return "framestyle-" + identity_hash({"jobs": self.entries}, 12)

    def to_json(self) -> str:
        return json.dumps({"jobs": self.entries}, sort_keys=True)


def load_spec(uri: str) -> JobSpec:
    """Read and validate the spec at ``uri`` (a local path or s3:// URI)."""
    data = storage.storage_for(uri).get_bytes(uri)
    if data is None:
        raise InputError(f"spec not found: {uri}")
    base = storage.parent(uri) if not storage.is_s3(uri) else None
    return parse_spec(data.decode("utf-8", errors="replace"), uri, base)


def parse_spec(text: str, source: str, base: str | None = None) -> JobSpec:
    """Validate spec ``text`` (YAML or JSON); ``base`` resolves relative local paths."""
    import yaml

    try:
        tree = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())  # one line
        raise InputError(f"{source}{where}: not valid YAML ({problem})") from None
    lines = _lines(tree)
    if isinstance(data, dict) and "jobs" in data:
        if set(data) != {"jobs"}:
            extra = sorted(set(data) - {"jobs"})[0]
            raise _error(source, lines, (extra,), "unknown field (a spec with jobs: holds only "
                         "the list)")
        items, prefix = data["jobs"], ("jobs",)
    elif isinstance(data, list):
        items, prefix = data, ()
    else:
        items, prefix = [data], None
    if not isinstance(items, list) or not items:
        raise _error(source, lines, prefix or (), "expected one job or a list of jobs")
    jobs = []
    for i, item in enumerate(items):
        path = () if prefix is None else (*prefix, i)
        jobs.append(_spec_job(item, path, source, lines, base))
    return JobSpec(source, jobs)


def _spec_job(item, path: tuple, source: str, lines: dict, base: str | None) -> SpecJob:
    if not isinstance(item, dict):
        raise _error(source, lines, path, "a job is a mapping with kind, inputs, output, ...")
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:
        raise _error(source, lines, (*path, "kind"),
                     f"must be one of {', '.join(KINDS)} (got {kind!r})")
    module = KINDS[kind]
    allowed = {"kind", "options", *module.SPEC_KEYS}
    for key in item:
        if key not in allowed:
            raise _error(source, lines, (*path, key),
                         f"unknown field (a {kind} job takes {', '.join(sorted(allowed))})")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise _error(source, lines, (*path, "options"), "must be a mapping of option: value")
    entry = {k: _resolved(k, v, base) for k, v in item.items()}
    fields = {field: entry[key] for key, field in module.SPEC_KEYS.items() if key in entry}
    for key, field in module.SPEC_KEYS.items():
        if key in options:
            raise _error(source, lines, (*path, "options", key), f"goes beside options, as {key}:")
    try:
        job = module.spec_job({**options, **fields})
    except FieldError as e:
        raise _error(source, lines, _spec_path(e, path, options, module.SPEC_KEYS),
                     e.message) from None
    except InputError as e:
        raise InputError(f"{source}: {'.'.join(map(str, path)) or 'job'}: {e}") from None
    return SpecJob(kind, entry, job)


def _resolved(key: str, value, base: str | None):
    """Local paths relative to the spec's folder, made absolute; lists for ``inputs``."""
    if key not in PATH_KEYS or value is None:
        return value
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list):
        return value  # the job's validation reports it
    out = [v if not isinstance(v, str) or storage.is_s3(v) or base is None or os.path.isabs(v)
           else os.path.join(base, v) for v in values]
    return out if key != "output" else out[0]


def _spec_path(error: FieldError, path: tuple, options: dict, keys: dict[str, str]) -> tuple:
    """Where a job field's error lives in the spec: options.X, or the key mapped to it."""
    loc = tuple(getattr(error, "loc", ()) or (error.field,))
    spec_key = {field: key for key, field in keys.items()}.get(loc[0])
    if spec_key is not None:
        return (*path, spec_key, *loc[1:])
    return (*path, "options", *loc) if loc[0] in options else (*path, *loc)


def _error(source: str, lines: dict, path: tuple, message: str) -> InputError:
    """``spec.yaml:7: jobs[1].options.height: message``: the file, the line, the field."""
    line = next((lines[path[:n]] for n in range(len(path), -1, -1) if path[:n] in lines), None)
    where = f"{source}:{line}" if line else source
    name = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return InputError(f"{where}: {name or 'spec'}: {message}")


def _lines(node, path: tuple = (), out: dict | None = None) -> dict:
    """{path: 1-based line} for every mapping key and list item of a composed YAML tree."""
    import yaml

    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            sub = (*path, key.value)
            out[sub] = key.start_mark.line + 1
            _lines(value, sub, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, value in enumerate(node.value):
            _lines(value, (*path, i), out)
    return out
