"""`--log-format json` gives JSON lines from kvha's loggers and kopf's alike, wherever the flag is
written on the command line (before `run`, the form people type, or after it, the chart's form)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from kvha.cli import configure_logging, make_parser


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
