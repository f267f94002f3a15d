from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.rtp import RtpPeer
from tests.support.server import TomsipServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [tool for tool in ("sipp", "redis-server") if shutil.which(tool) is None]
    if missing and config.getoption("--strict-tools", default=False):
        raise pytest.UsageError(f"missing system tools: {missing}")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--strict-tools", action="store_true", help="fail when a system tool is missing")


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TomsipServer]:
    """One shared tomsip process with the test dialplans (mock brain)."""
    log = tmp_path_factory.mktemp("tomsip") / "server.log"
    srv = TomsipServer(log_path=log).start()
    yield srv
    srv.stop()


@pytest.fixture
def rtp_peer() -> Iterator[RtpPeer]:
    peer = RtpPeer()
    yield peer
    peer.close()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[object]:
    """Start a dedicated tomsip with extra settings: make_server(TOMSIP_MAX_CALLS='2')."""
    started: list[TomsipServer] = []

    def _make(tls_cert: Path | None = None, **env: str) -> TomsipServer:
        srv = TomsipServer(env=env, log_path=tmp_path / f"server{len(started)}.log", tls_cert=tls_cert).start()
        started.append(srv)
        return srv

    yield _make
    for srv in started:
        srv.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path).start()
    yield srv
    srv.stop()
