"""Running the cloud for real, as people on call read it: `freshmesh cloud --workers 2 --access-log` with its own
embedded NATS and PostgreSQL (so freezing its PostgreSQL touches no other module), scraped like Prometheus would.

- /metrics totals are the same whichever worker answers (multiprocess mode) and equal the traffic sent;
- the chain's state is exported from the cloud's own sources, and every alert rule names metrics that exist;
- request ids come back and are in the access log's JSON lines; /health names the version;
- /openapi.json answers are what the live endpoints send (checked with jsonschema);
- a frozen PostgreSQL (SIGSTOP) is answered with a 503 problem in about two seconds, not after the deadline.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psutil
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from cloud.embedded.process import free_port
from cloud.messaging import bridge_shards
from cloud.runtime.hosting import retire_actors

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"
START_S = 240


class Cloud:
    def __init__(self, url: str, proc: subprocess.Popen, log_path: Path, printed: Path) -> None:
        self.url, self.proc, self.log_path, self.printed = url, proc, log_path, printed

    def get(self, path: str, **kw) -> httpx.Response:
        # a new connection every time: uvicorn's workers share the listening socket, so calls spread over them
        return httpx.get(self.url + path, timeout=30, **kw)

    def scrape(self) -> dict[str, dict[tuple, float]]:
        answer = self.get("/metrics")
        assert answer.status_code == 200, answer.text
        out: dict[str, dict[tuple, float]] = {}
        for family in text_string_to_metric_families(answer.text):
            bucket = out.setdefault(family.name, {})
            for s in family.samples:
                bucket[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def log_lines(self) -> list[dict]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    pass
        return lines


@pytest.fixture(scope="module")
def cloud(tmp_path_factory, ray_runtime):
    workdir = tmp_path_factory.mktemp("obs-cloud")
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS", "FRESHMESH_ADMIN_PASSWORD", "PROMETHEUS_MULTIPROC_DIR")}
    env["FRESHMESH_ADMIN_PASSWORD"] = "obs-admin-password-44"
    # the session's Ray (a second raylet on this busy box may not start within Ray's 30 s); its own embedded NATS
    # and PostgreSQL, so that freezing that PostgreSQL touches no other module
    env["RAY_ADDRESS"] = str(ray_runtime.get_runtime_context().gcs_address)
    # its actors apart from the session's others, and retired with it (detached actors outlive their cloud)
    env["FRESHMESH_ACTOR_PREFIX"] = prefix = f"obs{uuid.uuid4().hex[:6]}-"
    log_path = workdir / "cloud.log"
    with open(log_path, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "simulators.cli", "cloud", "--http-port", str(port),
                                 "--workers", "2", "--workdir", str(workdir / "state"), "--access-log"],
                                env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/health", timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail(f"the cloud did not start: {log_path.read_text()[-3000:]}")
        yield Cloud(url, proc, log_path, log_path)
    finally:
        for p in _postgres_of(log_path):  # never leave it stopped
            try:
                p.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
        retire_actors(prefix)


def _postgres_of(log_path: Path) -> list[psutil.Process]:
    """This cloud's own embedded PostgreSQL: the postmaster listening on the port it printed, and its backends."""
    found = re.search(r"DATABASE_URL=\S+@[\w.]+:(\d+)/", log_path.read_text(errors="replace"))
    if not found:
        return []
    port = found.group(1)
    for p in psutil.process_iter(["name", "cmdline"]):
        cmd = p.info["cmdline"] or []
        if p.info["name"] == "postgres" and "-p" in cmd and cmd[cmd.index("-p") + 1:cmd.index("-p") + 2] == [port]:
            return [p, *p.children(recursive=True)]
    return []


def _counter(scrape: dict, family: str, sample: str, **labels) -> float:
    return scrape.get(family, {}).get((sample, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_totals_over_both_workers_and_never_go_down(cloud):
    workers = {cloud.get("/health").json()["worker"] for _ in range(30)}
    assert len(workers) == 2, workers  # both workers answer: what one counts, the other must show too
    before = _counter(cloud.scrape(), "freshmesh_http_requests", "freshmesh_http_requests_total",
                      route="/products", status="200")
    sent = 40
    for _ in range(sent):
        assert cloud.get("/products").status_code == 200
    seen = []
    for _ in range(8):
        scrape = cloud.scrape()
        seen.append(_counter(scrape, "freshmesh_http_requests", "freshmesh_http_requests_total",
                             route="/products", status="200"))
        assert _counter(scrape, "freshmesh_http_request_seconds", "freshmesh_http_request_seconds_count",
                        route="/products") == seen[-1]
    assert seen == [before + sent] * len(seen), seen


def test_the_chains_state_is_exported_from_the_clouds_own_sources(cloud):
    deadline, scrape = time.monotonic() + 60, {}
    while time.monotonic() < deadline:
        scrape = cloud.scrape()
        up = scrape.get("freshmesh_scrape_source_up", {})
        if up and all(v == 1 for v in up.values()) and scrape.get("freshmesh_actor_health"):
            break
        time.sleep(1)
    assert all(v == 1 for v in scrape["freshmesh_scrape_source_up"].values()), scrape["freshmesh_scrape_source_up"]
    stores = {dict(k[1])["store"] for k in scrape["freshmesh_store_online"]}
    assert {"S001", "S002"} <= stores
    kinds = {dict(k[1])["kind"] for k in scrape["freshmesh_actor_health"]}
    assert {"store_registry", "order_router"} <= kinds, kinds  # stock pools start with their first command
    consumers = {dict(k[1])["consumer"] for k in scrape["freshmesh_jetstream_consumer_pending"]}
    assert set(bridge_shards.consumer_names()) <= consumers  # the bridge's shards (cloud/messaging/bridge_shards.py)
    assert ("freshmesh_build_info", (("version", cloud.get("/health").json()["version"]),)) in scrape[
        "freshmesh_build_info"]


def test_every_alert_rule_names_exported_metrics_and_loads_in_promtool(cloud):
    text = cloud.get("/metrics").text
    exported = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    console = {"actor_down", "actor_not_ready", "actor_restarted", "store_offline", "store_never_seen", "lag",
               "outbox_growing", "device", "disk_low", "shortage", "audit", "audit_incomplete",
               "source"}  # snapshot.alert_list
    assert console <= {r["labels"].get("console_alert") for r in rules}
    for rule in rules:
        assert rule["alert"] and "for" in rule and rule["labels"]["severity"] in ("critical", "warning"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
        names = set(re.findall(r"\b(freshmesh_\w+)", rule["expr"]))
        assert names, rule
        for name in names:
            family = re.sub(r"_(total|bucket|count|sum)$", "", name)
            assert name in exported or family in exported, f"{rule['alert']}: {name} is not exported"
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus); the rules were checked above")
    checked = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], capture_output=True, text=True,
                            timeout=60, cwd=ALERTS.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_request_ids_come_back_and_are_in_the_access_log(cloud):
    mine = f"obs-{uuid.uuid4().hex[:8]}"
    answer = cloud.get("/products", headers={"X-Request-Id": mine})
    assert answer.headers["x-request-id"] == mine
    made = cloud.get("/stores").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = cloud.log_lines()
        access = {line.get("request_id"): line for line in lines if line.get("logger") == "freshmesh.access"}
        if mine in access and made in access:
            break
        time.sleep(0.2)
    assert mine in access and made in access, cloud.log_path.read_text(errors="replace")[-4000:]
    assert access[mine]["path"] == "/products" and access[mine]["status"] == 200 and access[mine]["method"] == "GET"
    assert access[made]["path"] == "/stores"


def test_health_names_the_version(cloud):
    from cloud.logs import version
    body = cloud.get("/health").json()
    assert body["version"] == version() and body["database_latency_ms"] is not None


def test_live_answers_match_their_openapi_schemas(cloud):
    import jsonschema
    doc = cloud.get("/openapi.json").json()
    session = httpx.post(cloud.url + "/operator/sessions", timeout=30,
                         json={"username": "admin", "password": "obs-admin-password-44"})
    assert session.status_code == 201, session.text
    operator = {"Authorization": f"Bearer {session.json()['token']}"}
    answers = [("/operator/sessions", "post", session),
               ("/health", "get", cloud.get("/health")), ("/products", "get", cloud.get("/products")),
               ("/stores", "get", cloud.get("/stores", headers=operator)),
               ("/stores/{store_id}/stock", "get", cloud.get("/stores/S001/stock")),
               ("/openapi.json", "get", cloud.get("/openapi.json")),
               ("/operator/me", "get", cloud.get("/operator/me", headers=operator)),
               ("/operators", "get", cloud.get("/operators", headers=operator)),
               ("/operator/audit", "get", cloud.get("/operator/audit", headers=operator)),
               ("/audit", "get", cloud.get("/audit", headers=operator)),
               ("/operator/coupon-rules", "get", cloud.get("/operator/coupon-rules", headers=operator)),
               ("/operator/coupon-definitions", "get", cloud.get("/operator/coupon-definitions", headers=operator)),
               ("/promotion-budgets", "get", cloud.get("/promotion-budgets", headers=operator)),
               ("/console/snapshot", "get", cloud.get("/console/snapshot", headers=operator))]
    for path, method, answer in answers:
        ok = doc["paths"][path][method]["responses"][str(answer.status_code)]
        [(media, content)] = ok["content"].items()
        assert answer.headers["content-type"].startswith(media), (path, answer.headers["content-type"])
        schema = {**content["schema"], "components": doc["components"]}
        jsonschema.validate(answer.json(), schema)  # raises naming the field that does not match
    for path, media in (("/console", "text/html"), ("/metrics", "text/plain; version=0.0.4")):
        answer = cloud.get(path)
        assert list(doc["paths"][path]["get"]["responses"]["200"]["content"]) == [media]
        assert answer.headers["content-type"].replace(" ", "").startswith(media.replace(" ", "")), answer.headers

def test_a_frozen_postgres_is_answered_503_in_about_two_seconds_and_recovers(cloud):
    pg = _postgres_of(cloud.log_path)
    assert pg, "this cloud's PostgreSQL was not found"
    body = {"username": "admin", "password": "not-the-password-at-all"}
    assert httpx.post(cloud.url + "/operator/sessions", json=body, timeout=30).status_code == 401
    for p in pg:
        p.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        answer = httpx.post(cloud.url + "/operator/sessions", json=body, timeout=30)
        took = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert "PostgreSQL" in answer.json()["detail"] and answer.headers["retry-after"]
        # before: the request deadline (10 s) or the pool's command timeout (10 s), whichever came first
        assert took < 5, took
        health = cloud.get("/health")
        assert health.status_code == 503 and health.json()["checks"]["database"].startswith("down"), health.text
    finally:
        for p in pg:
            p.send_signal(signal.SIGCONT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.post(cloud.url + "/operator/sessions", json=body, timeout=30).status_code == 401:
            break
        time.sleep(0.5)
    else:
        pytest.fail("the API did not recover after PostgreSQL came back")

