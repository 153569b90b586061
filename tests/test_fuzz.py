"""Fuzzing with hypothesis: whatever a user or a file throws at the parsers, only our own
one-line errors come out (docs/reliability.md)."""

from __future__ import annotations

import io
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from framestyle.core.errors import FramestyleError, InputError
from framestyle.jobs.spec import parse_spec
from framestyle.models.hub import resolve
from framestyle.pipeline.image_decode import ImageError, decode_image
from framestyle.pipeline.image_source import safe_key

pytestmark = [pytest.mark.faults,
              pytest.mark.filterwarnings("ignore::UserWarning:PIL")]  # corrupt files, on purpose

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


def _one_line(error: BaseException) -> None:
    text = str(error)
    assert text and "\n" not in text.strip() and "Traceback" not in text


# --- job specs -----------------------------------------------------------------------------

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(),
                     st.text(max_size=20))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12)
_keys = st.sampled_from(["kind", "inputs", "output", "style", "options", "recipe", "name",
                         "inputs_b", "jobs", "height", "temporal", "x"])
_jobs = st.dictionaries(_keys, st.one_of(_values, st.sampled_from(
    ["video", "images", "train", "builtin:7", "s3://b/in/", "/tmp/x", "distill"])), max_size=6)


@FAST
@given(st.one_of(st.text(max_size=200), st.builds(lambda jobs: {"jobs": jobs},
                                                  st.lists(_jobs, max_size=3)), _values))
def test_job_specs(document):
    import yaml

    text = document if isinstance(document, str) else yaml.safe_dump(document)
    try:
        parse_spec(text, "fuzz.yaml")
    except InputError as e:
        _one_line(e)
        assert str(e).startswith("fuzz.yaml")


# --- --style references --------------------------------------------------------------------

_style_text = st.one_of(
    st.text(max_size=40),
    st.builds(lambda parts: ",".join(parts), st.lists(st.one_of(
        st.from_regex(r"builtin:-?\d{1,3}(=[-\d.e]{0,5})?", fullmatch=True),
        st.from_regex(r"\d{1,3}=[-\d.a-z]{0,5}", fullmatch=True),
        st.from_regex(r"[a-z]{1,8}@\d{0,3}", fullmatch=True)), max_size=4)),
)


@FAST
@given(_style_text)
def test_style_references(text):
    try:
        resolve(text)
    except InputError as e:
        _one_line(e)


# --- archive member names ------------------------------------------------------------------

@FAST
@given(st.text(alphabet=st.sampled_from(list("ab./\\:\x00 \u2025\uff0e\uff0f\u2215C")),
               max_size=16))
def test_archive_member_names(name):
    import unicodedata

    key = safe_key(name)
    if key is not None:
        for form in (key, unicodedata.normalize("NFKC", key)):
            assert ".." not in form.replace("\\", "/").split("/")
            assert not form.startswith(("/", "\\")) and "\x00" not in form


# --- image and video headers ---------------------------------------------------------------

def _sample(fmt: str) -> bytes:
    rgb = np.random.default_rng(1).integers(0, 256, (12, 16, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt)
    return buffer.getvalue()


SAMPLES = {fmt: _sample(fmt) for fmt in ("PNG", "JPEG", "GIF", "WEBP", "TIFF", "BMP")}


@FAST
@given(st.sampled_from(sorted(SAMPLES)), st.lists(st.tuples(st.integers(0, 63),
                                                            st.integers(0, 255)), max_size=6),
       st.integers(8, 400))
def test_image_headers(fmt, flips, cut):
    data = bytearray(SAMPLES[fmt])
    for offset, value in flips:
        data[offset % len(data)] = value
    try:
        image = decode_image(bytes(data[:cut]), max_side=64)
    except ImageError as e:
        _one_line(e)
    else:
        assert image.rgb.ndim == 3 and image.rgb.dtype == np.uint8


@pytest.fixture(scope="module")
def mp4_head(clips):
    return open(clips["bunny"], "rb").read(4096)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=8),
       cut=st.integers(0, 4096))
def test_video_headers(mp4_head, flips, cut):
    from framestyle.pipeline.probe import probe

    data = bytearray(mp4_head)
    for offset, value in flips:
        data[offset] = value
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        f.write(bytes(data[:cut]))
        f.flush()
        try:
            probe(f.name, "clip.mp4")
        except FramestyleError as e:
            _one_line(e)
