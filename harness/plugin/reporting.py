"""What a run shows pytest: one JUnit testcase per applicable gate (classname `gates`), and redaction of
everything pytest reports (test reports, the terminal, log handlers) before it is printed or written."""

from __future__ import annotations

import logging

import pytest

from harness.results.gates import GateResult


def gates_to_junit(config: pytest.Config, gates: list[GateResult]) -> None:
    """One JUnit testcase per applicable gate (classname `gates`): passed, failed, or skipped when the gate
    failed on a report-only grid (config/gates.yaml `report_only`)."""
    from _pytest.junitxml import xml_key

    from harness.infra.secrets import redact_text

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for gate in gates:
        if gate.status == "not-applicable":
            continue
        outcome = {"passed": "passed", "failed-report-only": "skipped"}.get(gate.status, "failed")
        for when in ("setup", "call", "teardown"):
            longrepr: object = None
            if when == "call" and outcome == "failed":
                longrepr = redact_text(f"gate {gate.name} failed: {gate.detail}")
            elif when == "call" and outcome == "skipped":  # junitxml wants (path, line, reason)
                longrepr = ("gates", 0, redact_text(f"report only: gate {gate.name} failed: {gate.detail}"))
            report = pytest.TestReport(
                nodeid=f"gates::{gate.name}",
                location=("gates", 0, gate.name),
                keywords={},
                outcome=outcome if when == "call" else "passed",
                longrepr=longrepr,
                when=when,
                user_properties=[
                    ("gate", gate.name),
                    ("value", gate.value),
                    ("threshold", gate.threshold),
                    ("detail", gate.detail),
                ],
            )
            xml.pytest_runtest_logreport(report)


def redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Redact a report in place: its traceback (with locals under -l), captured sections, user properties."""
    from harness.infra.secrets import known_secrets, redact_text

    if not known_secrets():
        return
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # a skip: (path, line, reason)
        report.longrepr = (longrepr[0], longrepr[1], redact_text(str(longrepr[2])))
    elif longrepr is not None:
        text = str(longrepr)
        if (clean := redact_text(text)) != text:
            report.longrepr = clean
    report.sections = [(title, redact_text(content)) for title, content in report.sections]
    if isinstance(report, pytest.TestReport):
        report.user_properties = [
            (k, redact_text(v) if isinstance(v, str) else v) for k, v in report.user_properties
        ]


class RedactingLogFilter(logging.Filter):
    """Formats each record's message, traceback and stack with the secrets replaced (the record is shared)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from harness.infra.secrets import redact_text

        record.msg, record.args = redact_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info)
        return True


def redact_pytest_output(config: pytest.Config) -> None:
    """Everything the terminal writer writes, and every record pytest's log handlers (--log-file, live logs,
    captured logs) handle, goes through the redactor first."""
    from harness.infra.secrets import redact_text

    writer = config.get_terminal_writer()
    write_raw = writer.write_raw

    def redacted_write_raw(msg: str, *, flush: bool = False) -> None:
        write_raw(redact_text(msg), flush=flush)

    writer.write_raw = redacted_write_raw  # type: ignore[method-assign]
    logging_plugin = config.pluginmanager.get_plugin("logging-plugin")
    for name in ("log_file_handler", "log_cli_handler", "caplog_handler", "report_handler"):
        handler = getattr(logging_plugin, name, None)
        if isinstance(handler, logging.Handler):
            handler.addFilter(RedactingLogFilter())
