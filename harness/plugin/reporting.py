"""What a run shows pytest's own reporters: gate testcases in JUnit, the closing lines in the terminal."""

from __future__ import annotations

import pytest

from harness.results.gates import GateResult, format_gates
from harness.results.leaderboard import format_table
from harness.results.records import RunPaths
from harness.run.finish import RunSummary

SKIP_HINTS = {
    "no-credentials": " - put the provider's key in secrets/credentials.txt (README: credentials)",
    "unavailable": " - the provider does not list the model; check `python -m harness models check`",
    "budget": " - a call quota or USD cap was reached (config/model_catalog.yaml providers, sweagent.yaml budgets)",
}


def gates_to_junit(config: pytest.Config, gates: list[GateResult]) -> None:
    """One JUnit testcase per applicable gate (classname `gates`)."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for gate in gates:
        if gate.status == "not-applicable":
            continue
        outcome = "passed" if gate.status == "passed" else "failed"
        for when in ("setup", "call", "teardown"):
            report = pytest.TestReport(
                nodeid=f"gates::{gate.name}",
                location=("gates", 0, gate.name),
                keywords={},
                outcome=outcome if when == "call" else "passed",
                longrepr=f"gate {gate.name} failed: {gate.detail}"
                if when == "call" and outcome == "failed"
                else None,
                when=when,
                user_properties=[
                    ("gate", gate.name),
                    ("value", gate.value),
                    ("threshold", gate.threshold),
                    ("detail", gate.detail),
                ],
            )
            xml.pytest_runtest_logreport(report)


def summary_lines(summary: RunSummary, paths: RunPaths, infra_errors: int) -> list[str]:
    """The leaderboard table, where the files are, the gates, skips, unreadable records, infra errors."""
    lines = [
        format_table(summary.rows),
        f"records: {paths.cases}  leaderboard: {paths.leaderboard_csv} (+ .html)",
    ]
    lines += format_gates([g for g in summary.gates if g.status != "not-applicable"])
    lines += [
        f"{n} case(s) skipped: {cls}" + SKIP_HINTS.get(cls, "") for cls, n in sorted(summary.skips.items())
    ]
    lines += [f"unreadable record left in place (not counted): {path}" for path in summary.unreadable]
    if infra_errors:
        lines.append(
            f"{infra_errors} case(s) hit infrastructure errors (not the model's fault); "
            f"see the records, then re-run them with --resume {paths.run_id}"
        )
    return lines
