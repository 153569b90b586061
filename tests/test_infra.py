"""infra/: the image, the KubeRay manifests, the cluster launcher config and the compose file,
checked against the schemas they must meet and against the versions the project pins."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).parent.parent
INFRA = ROOT / "infra"
VERSION = importlib.metadata.version("framestyle")
IMAGE = f"framestyle:{VERSION}"
MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))


def kuberay() -> jsonschema.Validator:
    schema = json.loads((INFRA / "k8s" / "schema" / "kuberay-v1-subset.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def pod_templates(manifest: dict) -> list[dict]:
    spec = manifest.get("spec", {})
    cluster = spec.get("rayClusterConfig") or spec.get("rayClusterSpec") or (
        spec if manifest["kind"] == "RayCluster" else None)
    templates = [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []
    if cluster:
        templates.append(cluster["headGroupSpec"]["template"])
        templates += [group["template"] for group in cluster.get("workerGroupSpecs", [])]
    return templates


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifests_use_only_the_kuberay_fields_we_rely_on(path):
    manifest = yaml.safe_load(path.read_text())
    errors = [e.message for e in kuberay().iter_errors(manifest)]
    assert errors == []
    for template in pod_templates(manifest):
        for container in template["spec"]["containers"]:
            assert container["image"] == IMAGE  # the image of this version
            env = {e["name"]: e for e in container.get("env", [])}
            assert env["RAY_AUTH_MODE"]["value"] == "token"  # token auth on
            assert "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]  # from a Secret
            assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)  # IAM roles
        assert template["spec"]["serviceAccountName"] == "framestyle"


def test_a_misspelt_field_fails_the_schema():
    cluster = yaml.safe_load((INFRA / "k8s" / "raycluster.yaml").read_text())
    validator = kuberay()
    assert validator.is_valid(cluster)
    for path, wrong in [(("spec",), "workerGroupSpec"), (("spec", "headGroupSpec"), "rayStartParam"),
                        (("spec", "workerGroupSpecs", 0), "maxReplica"),
                        (("spec", "workerGroupSpecs", 0, "template", "spec"), "toleration")]:
        broken = copy.deepcopy(cluster)
        parent = broken
        for key in path:
            parent = parent[key]
        parent[wrong] = parent.pop(wrong + "s") if wrong + "s" in parent else {}
        assert not validator.is_valid(broken), wrong


def test_the_cluster_is_shaped_for_gpus():
    cluster = yaml.safe_load((INFRA / "k8s" / "raycluster.yaml").read_text())["spec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (gpu,) = cluster["workerGroupSpecs"]
    assert 0 <= gpu["minReplicas"] < gpu["maxReplicas"]
    pod = gpu["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    for name in ("rayjob-video.yaml", "rayjob-train.yaml"):
        job = yaml.safe_load((INFRA / "k8s" / name).read_text())["spec"]
        assert job["clusterSelector"] == {"ray.io/cluster": "framestyle"}
        assert job["entrypoint"].startswith("framestyle ")


def test_the_entrypoints_are_commands_framestyle_takes():
    """What the RayJobs run parses with the real command line (a renamed flag would fail here
    rather than on the cluster)."""
    from framestyle.jobs.cli import build_parser

    for name in ("rayjob-video.yaml", "rayjob-train.yaml"):
        argv = yaml.safe_load((INFRA / "k8s" / name).read_text())["spec"]["entrypoint"].split()
        args, extra = build_parser().parse_known_args(argv[1:])
        assert args.json
        if args.command == "train":  # a recipe's own flags are parsed by the recipe
            assert extra == ["--teacher", "builtin:7"]
        else:
            assert extra == []


def test_the_launcher_config_passes_rays_own_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((INFRA / "aws" / "cluster.yaml").read_text())
    validate_config(prepare_config(copy.deepcopy(config)))
    assert config["docker"]["image"].endswith(f"/{IMAGE}")
    assert any("video" in option for option in config["docker"]["run_options"])  # NVENC
    types = config["available_node_types"]
    assert types["head"]["resources"] == {"CPU": 0}
    assert types["gpu_spot"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    assert "InstanceMarketOptions" not in types["gpu_on_demand"]["node_config"]
    assert all("IamInstanceProfile" in t["node_config"] for t in types.values())
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_spot"]["max_worker"] = 3
    with pytest.raises(Exception, match="max_worker"):
        validate_config(prepare_config(broken))


def test_the_compose_file_runs_minio_and_ray_on_the_image():
    compose = yaml.safe_load((INFRA / "local" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["minio"]["image"].startswith("minio/minio:")
    for name in ("ray-head", "ray-worker"):
        service = services[name]
        assert service["image"] == IMAGE
        assert service["command"].startswith("ray start ")
        assert service["environment"]["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert "--head" in services["ray-head"]["command"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]


def test_the_dockerfile_builds_the_pinned_stack_as_a_user():
    dockerfile = (INFRA / "docker" / "Dockerfile").read_text()
    instructions = [line.split(None, 1) for line in dockerfile.splitlines()
                    if line and not line.startswith(("#", " "))]
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-cudnn-runtime-", dockerfile)
    python = re.search(r"ARG PYTHON_VERSION=([\d.]+)", dockerfile).group(1)
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}"  # what tests run on
    assert "uv pip install --no-cache ." in dockerfile  # the pins of pyproject.toml, no others
    assert "NVIDIA_DRIVER_CAPABILITIES=compute,utility,video" in dockerfile
    users = [rest for word, rest in instructions if word == "USER"]
    assert users and users[-1].strip() not in ("root", "0")  # uid 1000, the user made above
    assert instructions[-1][0] == "CMD"
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv/", ".git/", "tests/"} <= set(ignored)
    makefile = (ROOT / "Makefile").read_text()
    assert "-t framestyle:$(VERSION)" in makefile  # the tag is the project's version


def test_hadolint_passes_the_dockerfile():
    hadolint = Path(sys.executable).with_name("hadolint")
    done = subprocess.run([str(hadolint), "--no-color", str(INFRA / "docker" / "Dockerfile")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
