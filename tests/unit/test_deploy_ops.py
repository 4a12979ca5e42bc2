"""The deployment material under ops/ checked as far as a box without a container runtime or a cluster allows:
Dockerfiles linted (hadolint) and their COPY sources present, the compose file against the Compose specification's
JSON schema and tied to what `freshmesh deploy nats-config` writes, Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate, strict) with the RayCluster's pod templates validated as pods, the systemd units with
`systemd-analyze verify`, the install script with shellcheck and a staged run. The tools are pinned test extras;
a test skips only when its tool truly cannot run here, and says why."""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
BIN = Path(sys.executable).parent
DOCKERFILES = [OPS / "docker" / "cloud.Dockerfile", OPS / "docker" / "edge.Dockerfile"]
UNITS = [OPS / "systemd" / "freshmesh-edge.service", OPS / "systemd" / "freshmesh-leaf.service"]


def tool(name: str) -> str:
    found = BIN / name if (BIN / name).exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]' brings it)")
    return str(found)


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


# ---- images -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_passes_hadolint(dockerfile: Path) -> None:
    done = run([tool("hadolint"), "--no-color", str(dockerfile)])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_shape(dockerfile: Path) -> None:
    text = dockerfile.read_text()
    assert re.findall(r"^FROM (\S+)", text, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    (user,) = re.findall(r"^USER (\S+)", text, re.M)
    assert user.split(":")[0].isdigit() and int(user.split(":")[0]) >= 1000, "a numeric non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*CMD .*/health", text, re.M), "a healthcheck on /health"
    # every COPY source exists (nothing can be built here, so a wrong path would otherwise go unseen) and the
    # packages pyproject installs are all copied in
    sources = [src for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M) for src in line.split()[:-1]]
    for src in sources:
        assert (ROOT / src).exists(), f"{dockerfile.name}: COPY {src}: no such path"
    packages = {p.rstrip("*") for p in re.findall(r'"(\w+)\*"', (ROOT / "pyproject.toml").read_text())}
    assert packages <= {s.strip("./") for s in sources}, packages


def test_images_build_where_a_builder_runs() -> None:
    docker = shutil.which("docker")
    if not docker or run([docker, "info"]).returncode != 0:
        pytest.skip("no container builder with a running daemon on this machine (the docker client alone cannot "
                    "build, and the python:3.11-slim base image is not reachable from here)")
    for dockerfile, tag in zip(DOCKERFILES, ("freshmesh-cloud:test", "freshmesh-edge:test"), strict=True):
        done = run([docker, "build", "-f", str(dockerfile), "-t", tag, str(ROOT)])
        assert done.returncode == 0, done.stderr[-3000:]


# ---- compose ----------------------------------------------------------------------------------------------------
COMPOSE = OPS / "compose" / "compose.yaml"


def test_compose_file_is_valid_against_the_compose_spec(tmp_path: Path) -> None:
    checker = tool("check-jsonschema")
    done = run([checker, "--builtin-schema", "vendor.compose-spec", str(COMPOSE)])
    assert done.returncode == 0, done.stdout + done.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("    restart: unless-stopped", "    restart_policy: always", 1))
    assert run([checker, "--builtin-schema", "vendor.compose-spec", str(broken)]).returncode != 0, \
        "the schema check would not catch an unknown service key"


def test_compose_runs_a_small_chain_from_the_generated_nats_config(tmp_path: Path) -> None:
    from cloud.deploy.cli import add_arguments, generate
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert {"nats", "postgres", "ray-head", "cloud", "edge-s001", "edge-s002", "leaf-s001", "leaf-s002"} <= set(services)
    assert services["cloud"]["environment"]["RAY_ADDRESS"].startswith("ray://ray-head:")
    for store in ("s001", "s002"):  # each box reaches NATS on its own leaf's loopback
        assert services[f"edge-{store}"]["network_mode"] == f"service:leaf-{store}"
    # every file the compose file mounts from ./nats is one `freshmesh deploy nats-config --count 2` writes
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "nats"
    generate(parser.parse_args(["nats-config", "--count", "2", "--out", str(out), "--public-host", "nats",
                                "--hub", "nats:7422", "--jetstream-dir", "/data/jetstream", "--max-file-store", "8GB"]))
    mounted = [v.split(":")[0] for s in services.values() for v in s.get("volumes", []) if v.startswith("./nats/")]
    mounted += [f for s in services.values() for f in s.get("env_file", []) if f.startswith("./nats/")]
    assert mounted
    for path in mounted:
        assert (tmp_path / path).is_file(), f"compose mounts {path}, which the generator does not write"
    for dockerfile in {s["build"]["dockerfile"] for s in services.values() if "build" in s}:
        assert (ROOT / dockerfile).is_file()


# ---- Kubernetes ---------------------------------------------------------------------------------------------------
MANIFESTS = OPS / "kubernetes" / "freshmesh.yaml"
RAYCLUSTER_SPEC_KEYS = {"rayVersion", "enableInTreeAutoscaling", "autoscalerOptions", "headServiceAnnotations",
                        "headGroupSpec", "workerGroupSpecs", "suspend", "managedBy", "gcsFaultToleranceOptions",
                        "authOptions", "upgradeStrategy"}
WORKER_GROUP_KEYS = {"groupName", "replicas", "minReplicas", "maxReplicas", "rayStartParams", "template",
                     "scaleStrategy", "suspend", "idleTimeoutSeconds", "numOfHosts", "headServiceAnnotations"}


def _docs() -> list[dict]:
    return [d for d in yaml.safe_load_all(MANIFESTS.read_text()) if d]


def _validate(doc: dict) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[test]' brings it")
    version = kubernetes_validate.latest_version()
    kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_manifests_validate_strictly() -> None:
    docs = _docs()
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc) and doc["metadata"].get("name"), doc
        if doc["apiVersion"] != "ray.io/v1":
            _validate(doc)
    kinds = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert ("Deployment", "freshmesh-api") in kinds and ("Deployment", "freshmesh-bridge") in kinds
    assert ("Service", "freshmesh-api") in kinds and ("RayCluster", "freshmesh-ray") in kinds


def test_a_broken_manifest_is_caught() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (api,) = [d for d in _docs() if d["kind"] == "Deployment" and d["metadata"]["name"] == "freshmesh-api"]
    api["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/health"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(api)


def test_the_api_scales_out_behind_a_service_and_is_ready_on_health() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in _docs()}
    api, bridge = docs["Deployment", "freshmesh-api"], docs["Deployment", "freshmesh-bridge"]
    assert api["spec"]["replicas"] >= 2 and bridge["spec"]["replicas"] >= 2
    for deployment, background in ((api, "0"), (bridge, "1")):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
        env = {e["name"]: e for e in container["env"]}
        assert env["FRESHMESH_BACKGROUND"]["value"] == background
        for secret in ("DATABASE_URL", "FRESHMESH_SECRET_KEY", "NATS_URL"):
            assert "secretKeyRef" in env[secret]["valueFrom"], f"{secret} comes from a Secret, never inline"
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert docs["Service", "freshmesh-api"]["spec"]["selector"].items() <= labels.items()


def test_the_configmap_holds_values_this_cloud_accepts() -> None:
    from cloud.messaging.streams import StreamBounds
    from cloud.runtime.shard_map import ShardConfig
    (config,) = [d for d in _docs() if d["kind"] == "ConfigMap"]
    data = config["data"]
    assert ShardConfig.from_env(data).counts() == {"stock_pool": int(data["FRESHMESH_STOCK_SHARDS"]),
                                                   "member_ledger": int(data["FRESHMESH_LEDGER_SHARDS"])}
    StreamBounds.from_env(data)  # raises on a value the cloud would refuse


def test_the_raycluster_has_kuberay_fields_and_valid_pod_templates() -> None:
    (cluster,) = [d for d in _docs() if d["kind"] == "RayCluster"]
    spec = cluster["spec"]
    assert set(spec) <= RAYCLUSTER_SPEC_KEYS, set(spec) - RAYCLUSTER_SPEC_KEYS
    assert spec["rayVersion"] == metadata.version("ray"), "the cluster runs the Ray this cloud is built with"
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    for group in spec["workerGroupSpecs"]:
        assert set(group) <= WORKER_GROUP_KEYS, set(group) - WORKER_GROUP_KEYS
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for group in groups:
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), "rayStartParams are strings"
        template = group["template"]
        _validate({"apiVersion": "v1", "kind": "Pod", "metadata": template.get("metadata") or {"name": "x"},
                   "spec": template["spec"]})
        for container in template["spec"]["containers"]:
            assert container["image"].startswith("freshmesh-cloud:"), "the actors' code is in the cloud image"
            env = {e["name"]: e for e in container["env"]}
            assert env["RAY_AUTH_MODE"]["value"] == "token" and "secretKeyRef" in env["RAY_AUTH_TOKEN"]["valueFrom"]


# ---- systemd ------------------------------------------------------------------------------------------------------
def _units_for_here(tmp_path: Path) -> list[Path]:
    """The units with their ExecStart pointing at this venv's binaries (verify checks they exist)."""
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/opt/freshmesh/venv/bin/", f"{BIN}/"))
        copies.append(copy)
    return copies


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    copies = _units_for_here(tmp_path)
    done = run([analyze, "verify", *map(str, copies)], cwd=tmp_path)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(copies[0].read_text().replace("Type=notify", "Type=notifyy"))
    assert run([analyze, "verify", str(broken)], cwd=tmp_path).stderr, "verify would not catch a bad value"
    security = run([analyze, "security", "--offline=yes", str(copies[0])], cwd=tmp_path)
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert level and float(level.group(1)) <= 2.5, security.stdout[-500:]


def test_the_edge_unit_is_a_watched_notify_service() -> None:
    text = UNITS[0].read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "User=freshmesh", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "CapabilityBoundingSet=\n", "ExecStart=/opt/freshmesh/venv/bin/freshmesh edge"):
        assert line in text, line


def test_install_script_passes_shellcheck_and_stages_the_layout(tmp_path: Path) -> None:
    script = OPS / "systemd" / "install-edge.sh"
    done = run([tool("shellcheck"), str(script)])
    assert done.returncode == 0, done.stdout
    box = tmp_path / "S045.box.json"
    box.write_text('{"store_id": "S045", "nats_password": "x"}')
    stage = tmp_path / "root"
    done = run(["bash", str(script), "--no-venv", "--box-config", str(box)], env={**os.environ, "DESTDIR": str(stage)})
    assert done.returncode == 0, done.stderr
    for path, mode in (("etc/freshmesh", 0o750), ("etc/freshmesh/edge.json", 0o640), ("var/lib/freshmesh", 0o700),
                       ("etc/systemd/system/freshmesh-edge.service", 0o644)):
        assert (stage / path).stat().st_mode & 0o777 == mode, path
    assert (stage / "etc/freshmesh/edge.json").read_text() == box.read_text()
    refused = run(["bash", str(script), "--box-config", str(tmp_path / "missing.json")],
                  env={**os.environ, "DESTDIR": str(stage)})
    assert refused.returncode == 2 and "cannot read" in refused.stderr
