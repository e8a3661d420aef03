"""`python -m harness calibrate -m GRID --repeats R`: can this machine grade each instance of a grid?

For every instance: the gold patch R times and a no-op patch once (swebench never evaluates an empty
patch, so the no-op patch adds an empty file and changes no code), through the same run machinery as an
eval (the evidence is a normal run folder with records and a leaderboard). Verdicts:

- `broken`: the no-op patch resolves it (its FAIL_TO_PASS tests pass without a fix), or gold never
  resolves it and no test flips;
- `flaky`: gold resolves it some of the times, or any FAIL_TO_PASS / PASS_TO_PASS test changes status
  between gold runs (the flipped tests are named);
- `stable`: gold resolves it every time, no test flips, the no-op patch does not resolve it;
- `error`: an infrastructure error kept a judgement from being made (nothing is written for it).

config/quarantine.yaml gets the flaky and broken ones (with the evidence run id and versions); a stable
instance leaves quarantine. Quarantined instances are skipped as `excluded` by later runs unless
`--include-quarantined`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from harness.config.schema import ModelEntry, QuarantineEntry
from harness.errors import HarnessError
from harness.results.records import CaseRecord
from harness.run.lifecycle import EvalRun, RunOptions

NOOP_MODEL = ModelEntry(id="noop", kind="noop", description="calibration: a patch that changes no code")
QUARANTINE_HEADER = """\
# Instances `python -m harness calibrate -m GRID --repeats R` found flaky or broken on the scoring machine.
# They are excluded from rates (their cases are skipped as `excluded` and reported apart) unless a run
# passes --include-quarantined. Each entry names the evidence run. Written by calibrate; edit with care.
"""


@dataclass
class InstanceVerdict:
    instance_id: str
    verdict: str
    """stable | flaky | broken | error"""
    reason: str
    flipped_tests: list[str] = field(default_factory=list)

    def line(self) -> str:
        return f"{self.instance_id}: {self.verdict} - {self.reason}"


def _statuses(record: CaseRecord) -> dict[str, str]:
    """test id -> success | failure, over FAIL_TO_PASS and PASS_TO_PASS of the evaluator's report."""
    found: dict[str, str] = {}
    for group in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        for status in ("success", "failure"):
            for test in ((record.tests_status or {}).get(group) or {}).get(status) or []:
                found[test] = status
    return found


def judge(instance_id: str, gold: list[CaseRecord], noop: CaseRecord | None) -> InstanceVerdict:
    """The verdict of one instance from its gold records and its no-op record."""
    unfinished = [r for r in [*gold, *([noop] if noop else [])] if not r.completed]
    if unfinished or noop is None or not gold:
        why = "; ".join(f"{r.case_id}: {r.outcome_class}: {r.message}" for r in unfinished) or "cases missing"
        return InstanceVerdict(instance_id, "error", f"could not judge ({why})")
    resolved = sum(r.resolved for r in gold)
    seen: dict[str, set[str]] = {}
    for record in gold:
        for test, status in _statuses(record).items():
            seen.setdefault(test, set()).add(status)
    flipped = sorted(t for t, statuses in seen.items() if len(statuses) > 1)
    tally = f"gold resolved {resolved}/{len(gold)}"
    if noop.resolved:
        return InstanceVerdict(instance_id, "broken", f"the no-op patch resolves it ({tally})")
    if flipped or 0 < resolved < len(gold):
        shown = ", ".join(flipped[:5]) + (f" (+{len(flipped) - 5} more)" if len(flipped) > 5 else "")
        return InstanceVerdict(
            instance_id, "flaky", f"{tally}; tests that flipped: {shown or 'none'}", flipped_tests=flipped
        )
    if resolved == 0:
        return InstanceVerdict(instance_id, "broken", f"gold never resolves it ({tally}; {gold[0].message})")
    return InstanceVerdict(instance_id, "stable", f"{tally}, the no-op patch does not resolve it")


def calibrate(
    options: RunOptions,
    repeats: int,
    *,
    instances: list[str] | None = None,
    rows: dict[str, dict] | None = None,
) -> tuple[EvalRun, list[InstanceVerdict]]:
    """Run gold `repeats` times and the no-op patch once per instance of the grid `options.markexpr` names.

    `instances` narrows the grid's instances; `rows` replaces the instance rows of the fixtures split (an
    instance made flaky on purpose, in tests).
    """
    if repeats < 1:
        raise HarnessError(f"--repeats {repeats}: use 1 or more gold runs per instance")
    calibration = dataclasses.replace(
        options,
        models=("gold", "noop"),
        attempts=repeats,
        extra_models=(NOOP_MODEL,),
        include_quarantined=True,
        eval_cache=False,  # every gold run is graded afresh: a cached verdict cannot flip
        no_gates=True,
        check_models="no",
    )
    run = EvalRun(calibration)
    cases = [c for c in run.selected if c.model_id == "gold" or c.attempt == 1]
    if instances:
        unknown = sorted(set(instances) - {c.instance_id for c in cases})
        if unknown:
            raise HarnessError(f"--instances: {', '.join(unknown)} not in grid {options.markexpr}")
        cases = [c for c in cases if c.instance_id in instances]
    if not cases:
        raise HarnessError(
            f"-m {options.markexpr!r} selects no instance; name a grid of config/sweagent.yaml"
        )
    run.start()
    ctx = run.context()
    if rows is not None:
        ctx.use_rows("fixtures", rows)
    records: list[CaseRecord] = []
    try:
        for case in cases:
            if (record := _run_one(run, ctx, case)) is not None:
                records.append(record)
    finally:
        ctx.close()
        run.finish(0)
    verdicts = []
    for instance_id in dict.fromkeys(c.instance_id for c in cases):
        gold = [r for r in records if r.instance_id == instance_id and r.model_id == "gold"]
        noop = next((r for r in records if r.instance_id == instance_id and r.model_id == "noop"), None)
        verdicts.append(judge(instance_id, gold, noop))
    return run, verdicts


def _run_one(run: EvalRun, ctx, case) -> CaseRecord | None:
    """The case's record; None when the harness could not even write one (judged as `error`)."""
    from harness.errors import CaseInfraError

    try:
        return run.run_case(ctx, case)
    except CaseInfraError:
        return None


def update_quarantine(path: Path, verdicts: list[InstanceVerdict], run: EvalRun) -> list[QuarantineEntry]:
    """Write flaky/broken instances into `path` (replacing their old entries); stable ones leave it."""
    from harness.config.loading import load_quarantine
    from harness.run.context import package_versions

    versions = package_versions()
    judged = {v.instance_id: v for v in verdicts if v.verdict != "error"}
    kept = [e for e in load_quarantine(path) if e.instance not in judged]
    today = datetime.now(UTC).date().isoformat()
    for v in judged.values():
        if v.verdict in ("flaky", "broken"):
            kept.append(
                QuarantineEntry(
                    instance=v.instance_id,
                    verdict=v.verdict,
                    reason=v.reason,
                    date=today,
                    run_id=run.run_id,
                    harness_version=versions.get("harness", ""),
                    evaluator_version=f"swebench {versions.get('swebench', '')}",
                    flipped_tests=v.flipped_tests,
                )
            )
    kept.sort(key=lambda e: e.instance)
    body = yaml.safe_dump({"instances": [e.model_dump() for e in kept]}, sort_keys=False, width=110)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(QUARANTINE_HEADER + body)
    tmp.replace(path)
    return kept
