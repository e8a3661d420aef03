"""Helpers shared by the harness's own tests: pytest and `python -m harness` in a subprocess, synthetic
CaseRecords, and a look at the labelled containers of a run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from harness.infra.containers import LABEL_CASE, LABEL_RUN
from harness.results.records import CaseRecord

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_CLASS = {
    "resolved": "resolved",
    "unresolved": "unresolved",
    "error": "provider-error",
    "skipped": "budget",
}


def run_pytest(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m pytest ARGS` from the project root, as a user runs it (no cache, no inherited PYTEST_ADDOPTS)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTEST_ADDOPTS": "", **(env or {})},
    )


def run_evals(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m pytest evals ARGS`: a real run of the harness."""
    return run_pytest("evals", *args, env=env, timeout=timeout)


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` from the project root."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})} if env is not None else None,
    )


def case_record(
    model_id: str,
    instance_id: str,
    outcome: str,
    attempt: int = 1,
    *,
    run_id: str = "run-a",
    outcome_class: str | None = None,
    repo: str = "r/r",
    **fields,
) -> CaseRecord:
    """A synthetic CaseRecord; the class defaults to the outcome's usual one (error: provider-error, skip: budget)."""
    return CaseRecord(
        run_id=run_id,
        case_id=f"{model_id}-{instance_id}-a{attempt}",
        model_id=model_id,
        provider=None,
        litellm_id=None,
        instance_id=instance_id,
        repo=repo,
        split="dev",
        attempt=attempt,
        agent_backend=fields.pop("agent_backend", "mini"),
        outcome=outcome,  # type: ignore[arg-type]
        outcome_class=outcome_class or DEFAULT_CLASS[outcome],
        **fields,
    )


def labelled_containers(runtime, *, run_label: str | None = None, case_id: str | None = None) -> list[str]:
    """Ids of containers (running or not) carrying our run label (RunPaths.run_label) and/or case label."""
    filters = []
    if run_label is not None:
        filters += ["--filter", f"label={LABEL_RUN}={run_label}"]
    if case_id is not None:
        filters += ["--filter", f"label={LABEL_CASE}={case_id}"]
    return runtime.run("ps", "-aq", "--no-trunc", *filters, check=False, timeout=60).stdout.split()


def config_with_splits(
    tmp: Path, splits: dict[str, list[dict]], *, agent: Callable[[dict], None] | None = None
) -> Path:
    """A copy of config/ whose dataset.lock holds `splits` (rows in tmp/data, real fingerprints), so run_case
    can run variants of the fixture rows like any locked split; `agent` edits sweagent.yaml."""
    from harness.infra.dataset import canonical_fingerprint

    cfg_dir = tmp / "config"
    shutil.copytree(ROOT / "config", cfg_dir)
    if agent is not None:
        data = yaml.safe_load((cfg_dir / "sweagent.yaml").read_text())
        agent(data)
        (cfg_dir / "sweagent.yaml").write_text(yaml.safe_dump(data))
    data_dir = tmp / "data"
    data_dir.mkdir()
    lock = {"hf_repo": "fixtures/tests", "revision": "local", "revision_verified": False}
    lock |= {"retrieved": "2026-01-01", "splits": {}}
    for name, rows in splits.items():
        path = data_dir / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        lock["splits"][name] = {
            "file": str(path),
            "rows": len(rows),
            "fingerprint": canonical_fingerprint(rows),
        }
    (cfg_dir / "dataset.lock").write_text(yaml.safe_dump(lock))
    return cfg_dir


def distribution_quantiles(dist: dict[float, float], qs: tuple[float, ...]) -> list[float]:
    """The q-quantiles (smallest value whose cumulative probability reaches q) of a finite distribution."""
    out = []
    for q in qs:
        cum = 0.0
        for value, p in sorted(dist.items()):
            cum += p
            if cum >= q - 1e-12:
                out.append(value)
                break
    return out


def shadow_with_broken_package(tmp: Path, monkeypatch, name: str, message: str) -> None:
    """Child processes started after this import a package `name` that raises ImportError(message)."""
    broken = tmp / "site"
    (broken / name).mkdir(parents=True)
    (broken / name / "__init__.py").write_text(f"raise ImportError({message!r})\n")
    monkeypatch.setenv("PYTHONPATH", f"{broken}{os.pathsep}{ROOT}")


class RecordingDockerProxy:
    """A Unix socket that forwards byte for byte to a Docker API socket and records each request's method and
    path, so a test can see which API calls a client made (e.g. no /version)."""

    REQUEST = re.compile(rb"(GET|POST|PUT|DELETE|HEAD) (/\S*) HTTP/1\.[01]\r\n")

    def __init__(self, upstream: str, folder: Path):
        self.upstream = upstream.removeprefix("unix://")
        self.path = folder / "docker-proxy.sock"
        self.requests: list[str] = []
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> RecordingDockerProxy:
        self._server.bind(str(self.path))
        self._server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    self.requests += [f"{m.decode()} {p.decode()}" for m, p in self.REQUEST.findall(data)]
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
