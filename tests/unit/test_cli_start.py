"""What `kvha run` settles before it starts: the log format, and the settings from the environment.

`--log-format json` gives JSON lines from kvha's loggers and kopf's alike, wherever the flag is
written on the command line (before `run`, the form people type, or after it, the chart's form).
A setting that does not parse stops the start with one line naming the variable."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from kvha.cli import configure_logging, main, make_parser
from kvha.settings import OperatorSettings, SettingsError


@pytest.fixture
def root_logging() -> Iterator[None]:
    """kopf.configure replaces the root logger's handler and level and silences asyncio's logger:
    put them back so that the other tests log as before."""
    root, aio = logging.getLogger(), logging.getLogger("asyncio")
    saved = (root.handlers[:], root.level, aio.handlers[:], aio.propagate)
    yield
    root.handlers[:], aio.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    aio.propagate = saved[3]


@pytest.mark.parametrize(
    "argv",
    [["--log-format", "json", "run"], ["run", "--log-format", "json"], ["--log-format", "json"]],
)
@pytest.mark.usefixtures("root_logging")
def test_json_format_logs_one_json_object_per_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    args = make_parser().parse_args(argv)
    configure_logging(log_format=args.log_format, verbose=args.verbose)
    logging.getLogger("kvha.cli").warning("lost leadership", extra={"node": "w1"})
    logging.getLogger("kopf.activities").info("kopf says hello")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["message"], line["severity"]) for line in lines] == [
        ("lost leadership", "warn"),
        ("kopf says hello", "info"),
    ]
    assert lines[0]["node"] == "w1", "extra= fields are JSON fields"


def test_flags_after_run_do_not_reset_those_before_it() -> None:
    args = make_parser().parse_args(["--log-format", "json", "--verbose", "run"])
    assert (args.log_format, args.verbose) == ("json", True)
    assert make_parser().parse_args(["run"]).log_format == "plain"


def test_settings_come_from_the_environment() -> None:
    settings = OperatorSettings.from_env(
        {
            "POD_NAME": "kvha-7d9f",
            "KVHA_LEASE_SECONDS": "20",
            "KVHA_LEADER_ELECTION": "false",
            "KVHA_POLICY_INTERVAL": "0.5",
            "KVHA_LIST_TIMEOUT": "",  # empty is unset: the default
        }
    )
    assert (settings.identity, settings.lease_seconds, settings.leader_election) == ("kvha-7d9f", 20, False)
    assert (settings.policy_interval, settings.list_timeout, settings.api_timeout) == (0.5, 60.0, 5.0)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KVHA_LEASE_SECONDS", "abc"),
        ("KVHA_LEASE_SECONDS", "0"),
        ("KVHA_HTTP_PORT", "80.5"),
        ("KVHA_POLICY_INTERVAL", "-1"),
        ("KVHA_API_TIMEOUT", "nan"),
        ("KVHA_LEADER_ELECTION", "yes"),
    ],
)
def test_a_bad_value_is_named_with_its_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}='{value}': expected "):
        OperatorSettings.from_env({name: value})


@pytest.mark.usefixtures("root_logging")
def test_run_with_a_bad_setting_exits_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KVHA_LEASE_SECONDS", "abc")
    with pytest.raises(SystemExit) as stopped:
        main(["run"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "invalid setting KVHA_LEASE_SECONDS='abc': expected a whole number from 1 to 3600"
    ]
