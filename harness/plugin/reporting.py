"""What a run shows pytest's JUnit reporter: one testcase per applicable gate (classname `gates`)."""

from __future__ import annotations

import pytest

from harness.results.gates import GateResult


def gates_to_junit(config: pytest.Config, gates: list[GateResult]) -> None:
    """One JUnit testcase per applicable gate (classname `gates`): passed, failed, or skipped when the gate
    failed on a report-only grid (config/gates.yaml `report_only`)."""
    from _pytest.junitxml import xml_key

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
                longrepr = f"gate {gate.name} failed: {gate.detail}"
            elif when == "call" and outcome == "skipped":  # junitxml wants (path, line, reason)
                longrepr = ("gates", 0, f"report only: gate {gate.name} failed: {gate.detail}")
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
