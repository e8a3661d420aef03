"""The official SWE-bench evaluator (swebench 4.1.0, in-process), evaluation slots shared across workers,
and the classification of what the evaluator said.

Each case is evaluated right after its agent finishes, inside one of N slots (file locks under the run
directory), so agents (I/O bound) and evaluations (CPU bound) of different cases overlap.
"""

from __future__ import annotations

import fcntl
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.infra import integrity


@dataclass
class EvalResult:
    outcome_class: str
    """resolved | unresolved | patch-apply-failed (model) or evaluator-error | eval-timeout (infra)."""
    resolved: bool
    infra: bool
    wall_s: float
    log_dir: Path
    report: dict[str, Any] | None = None
    message: str = ""
    integrity: list[str] = field(default_factory=list)
    """Flags of harness.infra.integrity (static patch checks and the test command's exit status)."""
    test_exit_status: int | None = None

    @property
    def tests_status(self) -> dict[str, Any] | None:
        return (self.report or {}).get("tests_status")


@contextmanager
def eval_slot(
    slots_dir: Path,
    n_slots: int,
    poll_s: float = 0.2,
    cpu_target: float | None = None,
    cpu_percent: Callable[[], float] | None = None,
) -> Iterator[float]:
    """Hold one of `n_slots` evaluation slots (shared by every process of the run); yields the wait in seconds.

    With `cpu_target`, slots beyond the first are admitted only while the machine's CPU is under it (the
    governor): evaluations are what load the CPU, agents mostly wait on the LLM, so a large -n cannot push
    the machine over the target. Slot 0 is always admitted, so evaluations never starve.
    """
    slots_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    handles = [open(slots_dir / f"slot-{i}.lock", "a+") for i in range(n_slots)]  # noqa: SIM115
    held = None
    try:
        while held is None:
            for index, handle in enumerate(handles):
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if index and cpu_target is not None and (cpu_percent or _cpu_percent)() >= cpu_target:
                    fcntl.flock(handle, fcntl.LOCK_UN)  # the machine is busy: wait for slot 0 or calm
                    continue
                held = handle
                break
            if held is None:
                time.sleep(poll_s)
        yield time.monotonic() - start
    finally:
        if held is not None:
            fcntl.flock(held, fcntl.LOCK_UN)
        for handle in handles:
            handle.close()


def _cpu_percent() -> float:
    """The machine's CPU use over the last 0.2 s, all threads (psutil)."""
    import psutil

    return float(psutil.cpu_percent(interval=0.2))


class _LabellingContainers:
    def __init__(self, containers: Any, labels: dict[str, str]):
        self._containers, self._labels = containers, labels

    def create(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["labels"] = {**(kwargs.get("labels") or {}), **self._labels}
        return self._containers.create(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._containers, name)


class LabellingClient:
    """A docker client whose `containers.create` adds our run/case labels, so the evaluator's containers
    can be found and removed after a crash like the agent's (swebench has no label option)."""

    def __init__(self, client: Any, labels: dict[str, str]):
        self._client = client
        self.containers = _LabellingContainers(client.containers, labels)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def eval_log_dir(log_root: Path, eval_run_id: str, model_id: str, instance_id: str) -> Path:
    """Where swebench's run_instance writes an evaluation's files under `log_root`."""
    return log_root / eval_run_id / model_id.replace("/", "__") / instance_id


def evaluate_patch(
    row: dict,
    patch: str,
    *,
    model_id: str,
    eval_run_id: str,
    namespace: str,
    log_root: Path,
    timeout_s: int,
    labels: dict[str, str] | None = None,
) -> EvalResult:
    """Run swebench's `run_instance` on one prediction and classify its result."""
    import docker
    from swebench.harness import run_evaluation
    from swebench.harness.constants import START_TEST_OUTPUT
    from swebench.harness.test_spec.test_spec import make_test_spec

    from harness.demo.fixtures import register_fixture_repos

    register_fixture_repos()
    # swebench writes logs under a cwd-relative directory; each case gets its own, inside the run folder.
    run_evaluation.RUN_EVALUATION_LOG_DIR = log_root
    pred = {"instance_id": row["instance_id"], "model_name_or_path": model_id, "model_patch": patch}
    log_dir = eval_log_dir(log_root, eval_run_id, model_id, row["instance_id"])
    start = time.monotonic()
    nonce = integrity.new_nonce()
    try:
        spec = make_test_spec(row, namespace=namespace)
        spec.eval_script_list = integrity.add_exit_status_probe(
            spec.eval_script_list, nonce, START_TEST_OUTPUT
        )
        client = docker.from_env(timeout=max(120, timeout_s))
    except Exception as e:  # no spec for the repo/version, no Docker API: the evaluator could not start
        message = " ".join(f"evaluator could not start: {type(e).__name__}: {e}".split())[:400]
        return EvalResult("evaluator-error", False, True, time.monotonic() - start, log_dir, None, message)
    try:
        labelled = LabellingClient(client, labels or {})
        run_evaluation.run_instance(spec, pred, False, False, labelled, eval_run_id, timeout_s)
    finally:
        client.close()
    result = classify_evaluation(row["instance_id"], log_dir, time.monotonic() - start)
    return check_integrity(result, spec, row, patch, nonce)


def check_integrity(result: EvalResult, spec: Any, row: dict, patch: str, nonce: str) -> EvalResult:
    """Add the integrity flags of an evaluated patch (static checks, then the test command's exit status)."""
    result.integrity = [str(f) for f in integrity.patch_flags(patch, row.get("test_patch", ""))]
    output = result.log_dir / "test_output.txt"
    if result.report is None or not output.is_file():
        return result
    from swebench.harness.grading import get_logs_eval

    result.test_exit_status = integrity.test_exit_status(output.read_text(errors="replace"), nonce)
    status_map, _ = get_logs_eval(spec, str(output))
    result.integrity += [str(f) for f in integrity.output_flags(result.test_exit_status, status_map)]
    return result


def classify_evaluation(instance_id: str, log_dir: Path, wall_s: float) -> EvalResult:
    """Turn the evaluator's files (report.json, run_instance.log) into an outcome class."""
    report_path = log_dir / "report.json"
    report = _read_report(report_path, instance_id)
    if report is not None:
        resolved = bool(report.get("resolved"))
        return EvalResult(
            "resolved" if resolved else "unresolved",
            resolved,
            False,
            wall_s,
            log_dir,
            report,
            "" if resolved else failing_tests_message(report),
        )
    log_path = log_dir / "run_instance.log"
    log = log_path.read_text(errors="replace") if log_path.is_file() else ""
    if "Patch Apply Failed" in log:
        return EvalResult(
            "patch-apply-failed", False, False, wall_s, log_dir, None, "the patch does not apply"
        )
    if "Test timed out" in log or "Timeout error" in log:
        return EvalResult(
            "eval-timeout", False, True, wall_s, log_dir, None, "the evaluator's test run timed out"
        )
    tail = [line for line in log.strip().splitlines() if line.strip()][-3:]
    detail = " | ".join(tail)[-400:] or f"no log at {log_path}"
    return EvalResult("evaluator-error", False, True, wall_s, log_dir, None, f"evaluator failed: {detail}")


def _read_report(path: Path, instance_id: str) -> dict[str, Any] | None:
    """The evaluator's report for the instance, or None when it is missing, torn or about something else."""
    try:
        report = json.loads(path.read_text())[instance_id]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return report if isinstance(report, dict) else None


def failing_tests_message(report: dict[str, Any]) -> str:
    """Which FAIL_TO_PASS / PASS_TO_PASS tests did not pass, for the assertion message."""
    status = report.get("tests_status") or {}
    parts = []
    for key in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        failing = (status.get(key) or {}).get("failure") or []
        if failing:
            shown = ", ".join(failing[:5]) + (f" (+{len(failing) - 5} more)" if len(failing) > 5 else "")
            parts.append(f"{key} failing: {shown}")
    return "; ".join(parts) or "not resolved"
