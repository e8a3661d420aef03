"""What the command line asked for, as a pytest-free value (harness.plugin.options fills it from pytest's
options), and the checks of its numbers that need no config."""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

from harness.config import ModelEntry
from harness.errors import HarnessError


@dataclass(frozen=True)
class RunOptions:
    """What the command line asked for (harness.plugin.options turns pytest's options into this)."""

    config_dir: Path
    runs_dir: Path
    credentials: Path
    credentials_explicit: bool = False
    model_specs: tuple[str, ...] = ()
    predictions: tuple[str, ...] = ()
    """`ID=PATH` of --predictions: models whose patches come from a predictions file (added to every grid)."""
    extra_models: tuple[ModelEntry, ...] = ()
    """Catalog entries added for this run only (calibration's no-op model)."""
    strict_integrity: bool = False
    include_quarantined: bool = False
    eval_cache: bool = True
    """False under --no-eval-cache: every patch is graded afresh (and nothing is stored)."""
    prefetch: bool = True
    """False under --no-prefetch: a worker grades each case before it starts the next agent."""
    agent_server: bool = True
    """False under --agent-in-process: mini-swe-agent runs in the worker, not in the run's agent server."""
    models: tuple[str, ...] | None = None
    attempts: int | None = None
    agent: str | None = None
    run_id: str | None = None
    resume: str | None = None
    infra_retries: int = 0
    eval_workers: int | None = None
    image_namespace: str = "swebench"
    dataset_source: str = "auto"
    check_models: str = "auto"
    compare_to: str | None = None
    no_gates: bool = False
    markexpr: str = ""
    keywordexpr: str = ""
    """-k: with -m and --resume, which cases run (the image check before the run looks at those only)."""
    argv: tuple[str, ...] = ()
    collect_only: bool = False
    shard: str | None = None
    """K/N: run only the K-th of N shards of the selected cases (harness.run.shard)."""
    eval_backend: str = "docker"
    """docker (the official evaluator in a local container) or modal (swebench's modal_eval)."""
    agent_env: str = "docker"
    """docker (the instance container on this machine) or modal (SWE-ReX's ModalDeployment)."""


FDS_RESERVED = 128
"""Open files a harness process needs besides evaluation slots (sockets, SQLite, logs, pipes)."""


def check_numbers(options: RunOptions, configured_eval_workers: int) -> None:
    if options.infra_retries < 0:
        raise HarnessError(f"--infra-retries {options.infra_retries}: use 0 or more")
    if options.eval_workers is not None and options.eval_workers < 1:
        raise HarnessError(f"--eval-workers {options.eval_workers}: use 1 or more evaluation slots")
    workers = options.eval_workers if options.eval_workers is not None else configured_eval_workers
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    most = max(1, soft - FDS_RESERVED) if soft != resource.RLIM_INFINITY else workers
    if workers > most:
        where = "--eval-workers" if options.eval_workers is not None else "evaluation.workers (sweagent.yaml)"
        raise HarnessError(
            f"{where} {workers}: a case waiting for a slot opens one file per slot and this process may open "
            f"{soft} files (ulimit -n); use at most {most} slots or raise `ulimit -n`"
        )
