"""`--host` for the cloud API and the edge lane API: loopback by default, the given address when asked."""
from __future__ import annotations

import argparse

import pytest

from cloud import main as cloud_main
from edge import main as edge_main

ANY = "0.0.0.0"  # noqa: S104 - the address a container binds; only compared here


def _cloud_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cloud_main.add_arguments(parser)
    return parser.parse_args(argv)


def _edge_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    edge_main.add_arguments(parser)
    return parser.parse_args(argv)


def _uvicorn_host(command: list[str]) -> str:
    return command[command.index("--host") + 1]


def test_cloud_api_listens_on_loopback_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FRESHMESH_HOST", raising=False)
    args = _cloud_args([])
    assert args.host == "127.0.0.1"
    assert _uvicorn_host(cloud_main.api_command(8080, 2, args.host)) == "127.0.0.1"


def test_cloud_api_host_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _uvicorn_host(cloud_main.api_command(8080, 2, _cloud_args(["--host", ANY]).host)) == ANY
    monkeypatch.setenv("FRESHMESH_HOST", "10.1.2.3")
    assert _cloud_args([]).host == "10.1.2.3"
    assert _cloud_args(["--host", "127.0.0.2"]).host == "127.0.0.2"  # the flag wins over the environment


def test_cloud_startup_lines_show_a_reachable_address() -> None:
    lines = cloud_main.startup_lines(8080, admin_created=False, password_file=None, host=ANY)
    assert lines[0].startswith("FreshMesh cloud: http://127.0.0.1:8080")  # 0.0.0.0 is not an address to browse
    lines = cloud_main.startup_lines(8080, admin_created=False, password_file=None, host="10.0.0.5")
    assert "http://10.0.0.5:8080" in lines[0]


def test_edge_lane_api_host_default_config_and_flag(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("FRESHMESH_EDGE_HOST", raising=False)
    (config,) = edge_main.load_configs(_edge_args(["--store", "S045"]))
    assert config["http_host"] == "127.0.0.1"
    assert edge_main.lane_server(object(), config).config.host == "127.0.0.1"

    path = tmp_path / "box.json"
    path.write_text('{"store_id": "S045", "http_host": "192.168.7.2"}')
    (config,) = edge_main.load_configs(_edge_args(["--config", str(path)]))
    assert edge_main.lane_server(object(), config).config.host == "192.168.7.2"
    (config,) = edge_main.load_configs(_edge_args(["--config", str(path), "--host", ANY]))
    assert edge_main.lane_server(object(), config).config.host == ANY

    monkeypatch.setenv("FRESHMESH_EDGE_HOST", ANY)
    (config,) = edge_main.load_configs(_edge_args(["--store", "S045"]))
    assert config["http_host"] == ANY


def test_cloud_refuses_a_malformed_shard_count_before_starting_anything(monkeypatch: pytest.MonkeyPatch,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FRESHMESH_STOCK_SHARDS", "many")
    monkeypatch.setattr("cloud.embedded.EmbeddedStack", None)  # reaching the servers' start would fail loudly
    assert cloud_main.run(_cloud_args([])) == 2
    assert "FRESHMESH_STOCK_SHARDS='many'" in capsys.readouterr().err
