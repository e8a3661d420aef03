"""CaseRecord schema, run directory layout, atomic writes, predictions derived from records.

Files are the database: one JSON CaseRecord per case, written atomically (tmp + fsync + rename);
manifest, predictions and leaderboards are derived from the records. Every write helper here redacts
what it writes *before* writing it (harness.infra.secrets), so no key is ever on disk, not even for the
moment a later redaction pass would need, and a full disk cannot leave one behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.outcomes import COMPLETED, Outcome

SCHEMA_VERSION = 1


class Telemetry(BaseModel):
    """Sum of the LLM calls of one case. Token counts say where they come from."""

    calls: int = 0
    """HTTP requests to the provider, failed ones included."""
    failed_calls: int = 0
    retries: int = 0
    """Requests that repeated a failed one (attempt > 1)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    token_source: str = "none"
    """provider (usage), tokenizer (litellm.token_counter), approx-chars/4, or a '+' mix; sweagent-local-tokenizer."""
    cost_usd: float | None = None
    """Catalog price x tokens; None when the price is unknown (never 0 for unknown)."""
    price_source: str = "unknown"
    provider_cost_usd: float | None = None
    """What the provider billed, where it says (OpenRouter usage.cost)."""
    cost_difference_usd: float | None = None
    retry_wait_s: float = 0.0
    latencies_s: list[float] = []
    """Per successful request, request to last byte, waits between retries excluded."""


class CaseRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    case_id: str
    model_id: str
    provider: str | None
    litellm_id: str | None
    instance_id: str
    repo: str
    split: str
    attempt: int
    agent_backend: str
    outcome: Outcome
    outcome_class: str
    message: str = ""
    patch: str = ""
    patch_sha256: str = ""
    agent_exit_status: str = ""
    steps: int = 0
    agent_wall_s: float = 0.0
    eval_queue_wait_s: float = 0.0
    eval_wall_s: float = 0.0
    case_wall_s: float = 0.0
    handoff_wait_s: float = 0.0
    """How long the finished agent's patch waited for its worker, still grading the case before (the agent was
    started early, while that case was graded: harness.run.prefetch); 0 when the agent ran in its own turn."""
    overhead_s: float = 0.0
    """Case wall time outside the agent, the hand-off, the evaluation queue and the evaluation (set-up,
    container start, any wait for the container's removal, record writing)."""
    container_start_s: float | None = None
    """Waiting for the agent's container to start (part of overhead_s; mini-swe-agent's starts during the first
    LLM request, so this is the part the request did not hide); None where the backend does not say."""
    container_remove_s: float | None = None
    """How long removing the agent's container took; mini-swe-agent's runs after the agent's result, beside
    the evaluation and the worker's next agent, so only what outlasts the grading is in overhead_s."""
    server_start_wait_s: float = 0.0
    """Waiting for the run's agent or evaluation server to finish loading (a worker's first cases, as the run
    starts): part of overhead_s, the run's start-up rather than the case's own time."""
    started_at: str = ""
    finished_at: str = ""
    telemetry: Telemetry = Telemetry()
    tests_status: dict[str, Any] | None = None
    integrity: list[str] = []
    """Integrity flags of the evaluated patch (harness.infra.integrity): edits-tests, edits-test-config,
    forged-test-output. They change the verdict only under --strict-integrity."""
    eval_cache: str = "off"
    """hit (the verdict of an earlier identical evaluation), miss (graded now and stored) or off."""
    eval_cache_source: str = ""
    """On a hit: <run id>/<case id> of the evaluation whose report was reused."""
    test_exit_status: int | None = None
    """Exit status of the evaluator's test command (None: not evaluated, or not recorded)."""
    image_digest: str | None = None
    """Content digest (image id) of the instance image the case ran on; None when it used none (skipped,
    the no-patch baseline) or the image was not there to inspect."""
    evaluator_report: dict[str, Any] | None = None
    errors: list[dict[str, str]] = []
    versions: dict[str, str] = {}
    dataset: dict[str, Any] = {}
    config_hash: str = ""
    model_settings: dict[str, Any] = {}
    infra_retries: int = 0
    """Infrastructure failures re-run within this run before this outcome (never counted as attempts)."""
    artifacts: dict[str, str] = Field(default_factory=dict)

    @property
    def own_wall_s(self) -> float:
        """The case's own time: its agent, its evaluation and its overhead, without its waits on other cases (the
        hand-off to a worker still grading the case before, the evaluation queue). Those depend on the schedule
        (which cases ran before, on how many slots), not on the model; nor the wait for the run's servers to finish
        loading (server_start_wait_s, the run's start-up). The leaderboard's wall counts this."""
        waits = self.handoff_wait_s + self.eval_queue_wait_s + self.server_start_wait_s
        return max(0.0, self.case_wall_s - waits)

    @property
    def is_infra_error(self) -> bool:
        return self.outcome == Outcome.ERROR

    @property
    def completed(self) -> bool:
        """A model result (resolved or unresolved): what rates, pairs and --resume count."""
        return self.outcome in COMPLETED

    @property
    def resolved(self) -> bool:
        return self.outcome == Outcome.RESOLVED


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest() if text else ""


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text`, redacted, so that readers see the old file or the whole new one, never a torn one.

    The temporary file has a unique name (several processes may write the same path at once: the last
    rename wins, none fails), and is removed when the write fails (a full disk keeps the old file).
    """
    from harness.infra.secrets import redact_text

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(redact_text(text))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (redacted) so that readers see either the old file or the whole new one, never a torn one."""
    from harness.infra.secrets import redact_json

    write_text_atomic(path, json.dumps(redact_json(data), indent=2, sort_keys=False) + "\n")


def append_text(path: Path, text: str) -> None:
    """Append `text` (a JSONL line, say) to `path`, redacted before it is written."""
    from harness.infra.secrets import redact_text

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(redact_text(text))


@contextlib.contextmanager
def runs_lock(runs_dir: Path) -> Iterator[None]:
    """Serialise writers of files shared by every run under `runs_dir` (runs/leaderboard.csv)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    with open(runs_dir / ".runs.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def disk_error(path: Path, exc: OSError, run_id: str) -> str:
    """One line for a write that failed (full disk, read-only folder): what, why, what to do."""
    return f"cannot write {path}: {exc.strerror or exc}; free space, then --resume {run_id}"


class RunPaths:
    """The layout of runs/<run_id>/ (DESIGN.md, Runs)."""

    def __init__(self, runs_dir: Path, run_id: str):
        self.runs_dir = runs_dir
        self.run_id = run_id
        self.root = runs_dir / run_id
        self.manifest = self.root / "manifest.json"
        self.cases = self.root / "cases"
        self.artifacts = self.root / "artifacts"
        self.predictions = self.root / "predictions"
        self.leaderboard_csv = self.root / "leaderboard.csv"
        self.slots = self.root / ".slots"
        self.fixture_images_checked = self.slots / "fixture-images.checked"
        """Marker: the fixture images were checked in this session of the run (removed when it starts)."""
        self.fixture_rows = self.slots / "fixture-rows.json"
        """The bundled fixtures' rows (their repos' commits and diffs), written by the process that checks the fixture
        images in this session: the others read it instead of writing the repos with git (removed when it starts)."""
        self.image_ids = self.slots / "image-ids.json"
        """Instance image -> id, as checked in this session of the run (the controller's pull check, the fixture
        check of the process that took its lock first): each worker reads it instead of asking the runtime
        (removed when it starts)."""

    @functools.cached_property
    def run_label(self) -> str:
        """What the run's containers are labelled and named with: the run id and its folder's absolute path, so
        two runs of one id in two runs dirs on one machine (shards given one --run-id, two checkouts sharing a
        Docker daemon) never share an evaluation container's name, nor remove each other's containers as
        leftovers. Moving a run folder changes it: the resume of a moved folder does not remove what a killed
        process left before the move (docs/decisions.md)."""
        folder = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]
        return f"{self.run_id}-{folder}"

    def record(self, case_id: str) -> Path:
        return self.cases / f"{case_id}.json"

    def case_artifacts(self, case_id: str) -> Path:
        return self.artifacts / case_id


def marker_path(paths: RunPaths, case_id: str) -> Path:
    return paths.cases / f"{case_id}.running"


def mark_running(paths: RunPaths, case_id: str) -> None:
    """A case in progress: if the process dies, the marker outlives it and resume re-runs the case."""
    from harness.errors import HarnessError

    path = marker_path(paths, case_id)
    try:
        write_json_atomic(path, {"pid": os.getpid(), "host": os.uname().nodename, "started": time.time()})
    except OSError as e:
        raise HarnessError(disk_error(path, e, paths.run_id)) from None


def stale_markers(paths: RunPaths) -> list[str]:
    """Case ids whose marker has no record: the case was running when its process died."""
    if not paths.cases.is_dir():
        return []
    return sorted(
        p.name[: -len(".running")]
        for p in paths.cases.glob("*.running")
        if not paths.record(p.name[: -len(".running")]).exists()
    )


def finished_case_ids(paths: RunPaths) -> set[str]:
    """Cases with a model outcome on disk (what --resume keeps); infra errors and skips run again."""
    done = set()
    if not paths.cases.is_dir():
        return done
    for entry in os.scandir(paths.cases):
        if entry.name.endswith(".json"):
            try:
                with open(entry.path, "rb") as f:
                    record = CaseRecord.model_validate_json(f.read())
            except (ValueError, OSError):
                continue  # not a record: the case runs again and the file is set aside
            if record.completed and record.case_id == entry.name[: -len(".json")]:
                done.add(record.case_id)
    return done


def write_record(paths: RunPaths, record: CaseRecord) -> Path:
    from harness.infra.secrets import redact_json

    path = paths.record(record.case_id)
    try:
        write_json_atomic(path, redact_json(record.model_dump(mode="json")))
    except OSError as e:
        from harness.errors import HarnessError

        raise HarnessError(disk_error(path, e, paths.run_id)) from None
    marker_path(paths, record.case_id).unlink(missing_ok=True)
    return path


def load_records(paths: RunPaths, unreadable: list[Path] | None = None) -> list[CaseRecord]:
    """Every valid record of the run, by case id. Files that do not parse, or whose case_id is not their
    file name (a copy would count twice), are left in place and listed."""
    if not paths.cases.is_dir():
        return []
    folder = str(paths.cases)
    names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".json"))
    records = []
    for name in names:
        try:
            with open(os.path.join(folder, name), "rb") as f:
                record = CaseRecord.model_validate_json(f.read())
        except (ValueError, OSError):
            record = None
        if record is not None and name == f"{record.case_id}.json":
            records.append(record)
        elif unreadable is not None:  # torn, foreign, or named for another case (it would count twice)
            unreadable.append(paths.cases / name)
    return records


def write_predictions(paths: RunPaths, records: list[CaseRecord]) -> list[Path]:
    """predictions/<model_id>/attempt-<k>.jsonl in SWE-bench format: one file per model and attempt, each
    instance at most once, so the official `run_evaluation --predictions_path FILE` can re-check any of
    them (it keys predictions by instance_id and would keep only one of several attempts)."""
    by_file: dict[tuple[str, int], list[CaseRecord]] = {}
    for rec in records:
        if rec.completed:
            by_file.setdefault((rec.model_id, rec.attempt), []).append(rec)
    written = []
    for (model_id, attempt), recs in sorted(by_file.items()):
        lines = [
            json.dumps(
                {
                    "instance_id": r.instance_id,
                    "model_name_or_path": model_id,
                    "model_patch": r.patch,
                    "attempt": r.attempt,
                    "case_id": r.case_id,
                    "run_id": r.run_id,
                }
            )
            for r in sorted({r.instance_id: r for r in recs}.values(), key=lambda r: r.instance_id)
        ]
        path = paths.predictions / model_id / f"attempt-{attempt}.jsonl"
        write_text_atomic(path, "\n".join(lines) + "\n")
        written.append(path)
    return written
