"""Run identity and the run manifest: versions, dataset lock, config hash, argv, host, timings, CPU samples."""

from __future__ import annotations

import json
import os
import platform
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any

from harness.config import HarnessConfig
from harness.results.records import CaseRecord, RunPaths, write_json_atomic
from harness.run.context import config_hash, package_versions


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


class CpuSampler:
    """psutil CPU samples every `interval_s`, for the CPU gate: `samples` is the whole machine's percent
    (all threads), `harness_samples` the share of the machine used by this process and its descendants
    (xdist workers, agent and evaluator subprocesses), on the same 0-100 scale. Containers run under
    the container runtime's own processes, so their CPU is in the machine's samples only."""

    def __init__(self, interval_s: float = 1.0):
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.harness_samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="harness-cpu-sampler")
        self._procs: dict[int, Any] = {}

    def _tree_percent(self, psutil: Any) -> float:
        """Sum of cpu_percent since the last call over this process tree, divided by the CPU count.
        A process seen for the first time only starts its measurement (psutil's first call gives 0)."""
        try:
            current = [psutil.Process(pid) for pid in process_tree(os.getpid())]
        except psutil.Error:
            current = []
        if not current:
            try:
                me = psutil.Process()
                current = [me, *me.children(recursive=True)]
            except psutil.Error:
                return 0.0
        total, seen = 0.0, {}
        for proc in current:
            known = self._procs.get(proc.pid)
            if known is None or known != proc:  # new, or a pid reused by another process
                known = proc
            try:
                total += known.cpu_percent(None)
            except psutil.Error:
                continue
            seen[proc.pid] = known
        self._procs = seen
        return round(total / (psutil.cpu_count() or 1), 1)

    def _loop(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        self._tree_percent(psutil)
        while not self._stop.wait(self.interval_s):
            self.samples.append(psutil.cpu_percent(None))
            self.harness_samples.append(self._tree_percent(psutil))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.samples


def process_tree(root: int) -> list[int]:
    """`root` and its descendants from /proc/<pid>/task/<tid>/children: a few reads per process of the tree,
    where psutil's children() reads every process on the machine (hundreds: podman keeps a conmon per
    exec session for minutes). Empty when the kernel does not offer the files (psutil is used then)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        found.append(pid)
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except (OSError, ValueError):
                if pid == root:
                    return []
    return found


def _dataset_lock_summary(cfg: HarnessConfig) -> dict[str, Any]:
    if not cfg.lock_path.is_file():
        return {}
    from harness.infra.dataset import load_lock

    return load_lock(cfg.lock_path).model_dump(mode="json")


def start_manifest(
    paths: RunPaths,
    cfg: HarnessConfig,
    *,
    argv: list[str],
    resume: bool = False,
    interrupted: list[str] | None = None,
) -> None:
    if resume and paths.manifest.is_file():
        manifest = json.loads(paths.manifest.read_text())
        if interrupted:
            manifest.setdefault("interrupted_cases", []).extend(interrupted)
        manifest.setdefault("resumes", []).append(
            {"at": datetime.now(UTC).isoformat(timespec="seconds"), "argv": argv}
        )
    else:
        manifest = {
            "run_id": paths.run_id,
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "argv": argv,
            "versions": package_versions(),
            "config_dir": str(cfg.dir),
            "config_hash": config_hash(cfg.dir),
            "dataset_lock": _dataset_lock_summary(cfg),
            "host": {
                "hostname": platform.node(),
                "cpu_threads": os.cpu_count(),
                "arch": platform.machine(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        }
    # the containers' label, as this folder gives it (docker ps --filter label=swebench-harness.run=...)
    manifest["run_label"] = paths.run_label
    write_json_atomic(paths.manifest, manifest)


def finish_manifest(
    paths: RunPaths,
    records: list[CaseRecord],
    cpu_samples: list[float],
    *,
    exitstatus: int,
    budget: dict | None = None,
    extra: dict | None = None,
) -> None:
    manifest = (
        json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {"run_id": paths.run_id}
    )
    outcomes: dict[str, int] = {}
    sources: dict[str, dict[str, str]] = {}
    for rec in records:
        outcomes[rec.outcome] = outcomes.get(rec.outcome, 0) + 1
        if rec.dataset:
            sources[rec.split] = {k: v for k, v in rec.dataset.items() if k != "image"}
    manifest.update(
        finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
        wall_s=round(
            time.time()
            - datetime.fromisoformat(manifest.get("started_at", datetime.now(UTC).isoformat())).timestamp(),
            1,
        ),
        cases=len(records),
        outcomes=outcomes,
        dataset_sources=sources,
        cpu_samples=cpu_samples,
        cpu_max_percent=max(cpu_samples, default=0.0),
        cpu_mean_percent=round(sum(cpu_samples) / len(cpu_samples), 1) if cpu_samples else 0.0,
        pytest_exitstatus=exitstatus,
        budget=budget or {},
        **(extra or {}),
    )
    write_json_atomic(paths.manifest, manifest)
