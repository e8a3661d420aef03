"""The official SWE-bench evaluator (swebench 4.1.0, in-process) and the classification of what it said.

Each case is evaluated right after its agent finishes, inside one of N slots shared by the run's processes
(harness.infra.eval_slots), so agents (I/O bound) and evaluations (CPU bound) of different cases overlap.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import one_line
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
    server_wait_s: float = 0.0
    """Waiting for the run's evaluation server to load the evaluator before this evaluation (not in wall_s)."""

    @property
    def tests_status(self) -> dict[str, Any] | None:
        return (self.report or {}).get("tests_status")


class _LabellingContainers:
    def __init__(self, containers: Any, labels: dict[str, str]):
        self._containers, self._labels = containers, labels

    def create(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["labels"] = {**(kwargs.get("labels") or {}), **self._labels}
        return _NoGraceContainer(self._containers.create(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._containers, name)


class _NoGraceContainer:
    """An evaluation container whose `stop` is left to the forced removal that follows it.

    swebench's cleanup (after the report is written) calls `stop(timeout=15)`, then `remove(force=True)`. Its
    containers run `tail -f /dev/null` as PID 1, which ignores SIGTERM, so on an instance image without a
    STOPSIGNAL (every pulled SWE-bench image) the stop waits the whole 15 s before it kills: 15 s per
    evaluation spent in an evaluation slot after the verdict (measured here on podman: 15.25 s). The forced
    removal kills and removes in one call (~0.2 s); nothing graceful is owed to a container that is thrown away.
    """

    def __init__(self, container: Any):
        self._container = container

    def stop(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: swebench's cleanup removes the container with force right after (it kills it first)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)


class LabellingClient:
    """A docker client whose `containers.create` adds our run/case labels, so the evaluator's containers
    can be found and removed after a crash like the agent's (swebench has no label option)."""

    def __init__(self, client: Any, labels: dict[str, str]):
        self._client = client
        self.containers = _LabellingContainers(client.containers, labels)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def docker_client(timeout: int) -> Any:
    """`docker.from_env()` at the API version the daemon's /_ping announces, without the SDK's /version round
    trip: podman answers /version in ~0.6 s of CPU (it asks the package manager for its components' versions),
    once per evaluation; /_ping's Api-Version header is the same number for ~0.01 s. A daemon that sends no
    such header gets the SDK's own detection."""
    import docker
    from docker.constants import MINIMUM_DOCKER_API_VERSION

    probe = docker.from_env(version=MINIMUM_DOCKER_API_VERSION, timeout=30)
    try:
        version = probe.api.get(probe.api.base_url + "/_ping").headers.get("Api-Version") or "auto"
    except Exception:  # noqa: BLE001 - no answer: let the SDK's detection say what is wrong
        version = "auto"
    finally:
        probe.close()
    return docker.from_env(version=version, timeout=timeout)


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
        client = docker_client(timeout=max(120, timeout_s))
    except Exception as e:  # no spec for the repo/version, no Docker API: the evaluator could not start
        message = one_line(f"evaluator could not start: {type(e).__name__}: {e}")
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
