"""Security: nothing a user uploads runs as code, credentials go nowhere, no path escapes its
destination, and the cluster's token is not sent in the clear (docs/reliability.md)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from helpers import run_cli

from framestyle.jobs.cluster_jobs import check_transport
from framestyle.pipeline.image_source import safe_key

pytestmark = pytest.mark.faults

SPEC = """jobs:
  - kind: images
    inputs: s3://media/photos/
    output: s3://media/styled/
    style: builtin:7
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(SPEC)
    return path


def test_submit_refuses_plain_http_to_another_machine(spec, capsys):
    code, out, err = run_cli(capsys, "submit", spec, "--address", "http://10.20.30.40:8265")
    assert code == 2 and out == ""
    assert err == ("framestyle: error: refusing to send the cluster's token over plain http to "
                   "10.20.30.40: use https://, or --insecure on a network you trust\n")
    for url in ("http://127.0.0.1:8265", "http://localhost:8265", "https://head.example:8265",
                "127.0.0.1:8265"):
        check_transport(url, insecure=False)
    check_transport("http://10.20.30.40:8265", insecure=True)
    with pytest.raises(Exception, match="plain http to head"):
        check_transport("head:8265", insecure=False)


@pytest.mark.parametrize("key", ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "db_password"])
def test_submit_refuses_credentials_in_the_job_environment(spec, capsys, key):
    code, out, err = run_cli(capsys, "submit", spec, "--env", f"{key}=hunter2")
    assert code == 2 and out == "" and "hunter2" not in err
    assert err.startswith(f"framestyle: error: --env {key}: credentials would be stored in the "
                          "job's metadata")


@pytest.mark.parametrize("name", [
    "../escape.jpg", "a/../../escape.jpg", "/etc/passwd", "//server/share/x.jpg",
    "..\\..\\windows.jpg", "C:\\Users\\x.jpg", "c:/x.jpg", "a/\u2025/x.jpg", "a/\uff0e\uff0e/x.jpg",
    "a/\u2024\u2024/x.jpg", "\u2215etc\u2215passwd", "a\\..\\..\\x.jpg", "", ".", "a/./../..",
    "x\x00.jpg",
])
def test_member_names_never_escape(name):
    """Archive member names (and so output keys) as an attacker would write them."""
    key = safe_key(name)
    if key is not None:
        for form in (key, unicodedata.normalize("NFKC", key)):
            assert not form.startswith(("/", "\\")) and not re.match(r"^[A-Za-z]:", form)
            assert ".." not in form.replace("\\", "/").split("/") and "\x00" not in form


def test_member_names_people_use_are_kept():
    assert safe_key("2024/trip/IMG_0001.JPG") == "2024/trip/IMG_0001.JPG"
    assert safe_key("./a//b.png") == "a/b.png"
    assert safe_key("dir\\sub\\x.png") == "dir/sub/x.png"  # zips made on Windows
    assert safe_key("café/12:30 ünïcode.jpg") == "café/12:30 ünïcode.jpg"
