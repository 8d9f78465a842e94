"""service/serve_cli.py: options and S2S_* variables become one ServerConfig; bad starts exit non-zero."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest

from engine.sessions import RunnerConfig
from s2s.cli import EXIT_USAGE
from service import cli, serve_cli
from service.config import ServerConfig
from service.scheduler import SchedulerConfig


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="s2s")
    cli.add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_help_defaults_equal_the_dataclass_defaults() -> None:
    runner, scheduler, server = RunnerConfig(), SchedulerConfig(), ServerConfig()
    assert serve_cli.DEFAULTS == {
        "threads": runner.intra_op_threads,
        "graph_optimization": runner.optimization,
        "max_rows": scheduler.max_rows,
        "max_queue": scheduler.max_queue,
        "max_batch_wait_ms": scheduler.max_batch_wait_ms,
        "admit_min_rows": scheduler.admit_min_rows,
        "admit_max_wait_ms": scheduler.admit_max_wait_ms,
        "max_requests": scheduler.max_requests,
        "decode_threads": scheduler.decode_threads,
        "engine": scheduler.engine,
        "engine_nice": scheduler.engine_nice,
        "max_beam": scheduler.max_beam,
        "max_src_tokens": scheduler.max_src_tokens,
        "max_output_len": scheduler.max_output_len,
        "max_texts": server.max_texts,
        "max_text_chars": server.max_text_chars,
        "max_attention_values": server.max_attention_values,
        "grace_period": server.grace_period_s,
        "max_calls": server.calls.max_calls,
        "max_streams": server.calls.max_streams,
        "max_health_calls": server.calls.max_health_calls,
        "max_decoding": server.calls.max_decoding,
        "max_receive_bytes": server.max_receive_bytes,
    }


def test_no_options_give_the_default_config() -> None:
    assert serve_cli.server_config(_parse(["serve"])) == ServerConfig()


def test_environment_variables_configure_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_PORT", "0")
    monkeypatch.setenv("S2S_METRICS_PORT", "off")
    monkeypatch.setenv("S2S_BUNDLE", "a/1, b/2")
    monkeypatch.setenv("S2S_MAX_ROWS", "32")
    monkeypatch.setenv("S2S_GRACE_PERIOD", "2.5")
    monkeypatch.setenv("S2S_REQUIRE_PROVIDER", "true")
    config = serve_cli.server_config(_parse(["serve"]))
    assert config.port == 0
    assert config.metrics_port is None
    assert config.bundles == (Path("a/1"), Path("b/2"))
    assert config.scheduler.max_rows == 32
    assert config.grace_period_s == 2.5
    assert config.runner.require_provider is True


def test_command_line_wins_and_bundle_is_repeatable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S2S_BUNDLE", "from/env")
    monkeypatch.setenv("S2S_PORT", "1234")
    args = _parse(["serve", "--bundle", "x/1,y/1", "--bundle", "z/3", "--port", "5", "--max-beam", "4",
                   "--precision", "int8", "--metrics-port", "0"])  # fmt: skip
    config = serve_cli.server_config(args)
    assert config.bundles == (Path("x/1"), Path("y/1"), Path("z/3"))
    assert config.port == 5
    assert config.metrics_port == 0
    assert config.limits.max_beam == 4
    assert config.runner.precision == "int8"


@pytest.mark.parametrize("text", ["-1", "off", "OFF", "none"])
def test_metrics_port_off(text: str) -> None:
    assert serve_cli.port_or_off(text) is None


def test_metrics_port_out_of_range_is_rejected() -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        serve_cli.port_or_off("70000")


def test_serve_refuses_a_missing_bundle_with_a_clear_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    args = _parse(["serve", "--bundle", str(tmp_path / "nope"), "--port", "0", "--metrics-port", "off"])
    assert serve_cli.serve(args) == EXIT_USAGE
    assert "nope" in caplog.text and "does not exist" in caplog.text


def test_serve_refuses_a_corrupt_manifest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    (tmp_path / "manifest.json").write_text("{not json")
    args = _parse(["serve", "--bundle", str(tmp_path), "--port", "0", "--metrics-port", "off"])
    assert serve_cli.serve(args) == EXIT_USAGE
    assert "not valid JSON" in caplog.text


def test_serve_refuses_an_invalid_configuration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    args = _parse(["serve", "--max-beam", "100", "--max-rows", "8"])
    assert serve_cli.serve(args) == EXIT_USAGE
    assert "max_beam" in caplog.text


def test_serve_refuses_a_bundle_of_an_unknown_format(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "s2s-bundle", "format_version": 99}))
    args = _parse(["serve", "--bundle", str(tmp_path), "--port", "0", "--metrics-port", "off"])
    assert serve_cli.serve(args) == EXIT_USAGE
    assert "format_version" in caplog.text
