"""The harness's pytest command-line options, in one group (`pytest --help`, section swebench-harness),
and their translation into the pytest-free RunOptions of harness.run.lifecycle."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.run.lifecycle import RunOptions


def add_options(parser: pytest.Parser) -> None:
    """Every `pytest evals` option of the harness (README: Options)."""
    group = parser.getgroup("swebench-harness")
    group.addoption("--harness-config", default=None, help="config directory (default: <rootdir>/config)")
    group.addoption("--runs-dir", default=None, help="where run folders go (default: <rootdir>/runs)")
    group.addoption(
        "--run-id", default=None, help="name of the new run folder (default: UTC timestamp + random)"
    )
    group.addoption(
        "--resume",
        default=None,
        metavar="RUN_ID",
        help="finish run RUN_ID: re-run missing cases and infra errors, keep model outcomes",
    )
    group.addoption("--models", default=None, help="ID[,ID...]: replace every grid's model set")
    group.addoption("--attempts", type=int, default=None, help="K: attempts per (model, instance), all grids")
    group.addoption("--eval-workers", type=int, default=None, help="evaluation slots shared by all workers")
    group.addoption(
        "--image-namespace",
        default="swebench",
        help="where instance images come from: swebench (Docker Hub), a registry/mirror, or localhost",
    )
    group.addoption(
        "--agent",
        default=None,
        choices=["mini", "sweagent"],
        help="agent backend: mini (mini-swe-agent, default) or sweagent (SWE-agent 1.1.0, pip install -e '.[sweagent]')",
    )
    group.addoption(
        "--infra-retries",
        type=int,
        default=0,
        metavar="N",
        help="re-run a case up to N times within the run after an infra error (attempts unchanged)",
    )
    group.addoption(
        "--no-gates", action="store_true", help="report the gates of config/gates.yaml without failing"
    )
    group.addoption(
        "--compare-to", default=None, metavar="RUN_ID", help="rerun reproducibility gate against RUN_ID"
    )
    group.addoption(
        "--model-spec",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a model for this run: 'id=NAME,litellm=openai/MODEL,api_base=URL[,api_key_env=VAR]' (repeatable)",
    )
    group.addoption(
        "--credentials",
        default=None,
        help="KEY=VALUE file loaded into the environment (default: secrets/credentials.txt)",
    )
    group.addoption(
        "--check-models",
        default="auto",
        choices=["auto", "yes", "no"],
        help="ask providers' /models which models exist before the run (auto: when any has credentials)",
    )
    group.addoption(
        "--predictions",
        action="append",
        default=[],
        metavar="ID=PATH",
        help="add model ID whose patches come from a SWE-bench predictions file (repeatable; README)",
    )
    group.addoption(
        "--strict-integrity",
        action="store_true",
        help="a patch with an integrity flag (edits tests, forged output) is unresolved (class integrity-flagged)",
    )
    group.addoption(
        "--no-eval-cache",
        action="store_true",
        help="grade every patch afresh (default: reuse the machine's cached verdict of an identical evaluation)",
    )
    group.addoption(
        "--no-prefetch",
        action="store_true",
        help="let a worker finish grading a case before it starts the next agent (default: the next agent "
        "starts while the case is graded)",
    )
    group.addoption(
        "--agent-in-process",
        action="store_true",
        help="run mini-swe-agent inside each worker, e.g. to debug it with --pdb (default: in forks of the run's "
        "agent server, which imports litellm once for all workers)",
    )
    group.addoption(
        "--include-quarantined",
        action="store_true",
        help="run and count instances config/quarantine.yaml quarantines (default: skipped as excluded)",
    )
    group.addoption(
        "--shard",
        default=None,
        metavar="K/N",
        help="run the K-th of N cost-balanced shards of the selected cases (merge: python -m harness merge)",
    )
    group.addoption(
        "--eval-backend",
        default="docker",
        choices=["docker", "modal"],
        help="where the official evaluator runs: docker (this machine) or modal (swebench's modal_eval)",
    )
    group.addoption(
        "--agent-env",
        default="docker",
        choices=["docker", "modal"],
        help="where the agent's instance container runs: docker (this machine) or modal (SWE-ReX on Modal)",
    )
    group.addoption(
        "--dataset-source",
        default="auto",
        choices=["auto", "snapshot", "hf"],
        help="SWE-bench Lite rows: HF at the locked revision, or the offline snapshot",
    )


def is_eval_session(config: pytest.Config) -> bool:
    """True when pytest was pointed at evals/ (the harness's own tests/ run without a run lifecycle)."""
    evals = (config.rootpath / "evals").resolve()
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == evals or evals in path.parents:
            return True
    return False


def run_options(config: pytest.Config) -> RunOptions:
    """The harness's options of this pytest invocation, as the pytest-free RunOptions."""
    get, root = config.getoption, config.rootpath
    credentials = get("--credentials")
    models = get("--models")
    return RunOptions(
        config_dir=Path(get("--harness-config") or root / "config"),
        runs_dir=Path(get("--runs-dir") or root / "runs").resolve(),
        credentials=Path(credentials or root / "secrets" / "credentials.txt"),
        credentials_explicit=bool(credentials),
        model_specs=tuple(get("--model-spec")),
        predictions=tuple(get("--predictions")),
        strict_integrity=bool(get("--strict-integrity")),
        include_quarantined=bool(get("--include-quarantined")),
        eval_cache=not (get("--no-eval-cache") or get("--compare-to")),  # a rerun's reproducibility: regrade
        prefetch=not get("--no-prefetch"),
        agent_server=not get("--agent-in-process"),
        models=tuple(m.strip() for m in models.split(",") if m.strip()) if models else None,
        attempts=get("--attempts"),
        agent=get("--agent"),
        run_id=get("--run-id"),
        resume=get("--resume"),
        infra_retries=get("--infra-retries"),
        eval_workers=get("--eval-workers"),
        image_namespace=get("--image-namespace"),
        dataset_source=get("--dataset-source"),
        check_models=get("--check-models"),
        compare_to=get("--compare-to"),
        no_gates=bool(get("--no-gates")),
        markexpr=config.option.markexpr or "",
        argv=tuple(config.invocation_params.args),
        collect_only=bool(config.option.collectonly),
        shard=get("--shard"),
        eval_backend=get("--eval-backend"),
        agent_env=get("--agent-env"),
    )


WORKER_CAP = 12
"""DESIGN.md (Budgets and concurrency): -n is capped at 12 (the design card: 16 threads -> 12 workers).
Agent workers mostly wait on the LLM, so they are not capped by the CPU count: the 80 % CPU target is
held by admitting evaluations (harness.infra.eval_slots.eval_slot's governor), not by starving agents."""


def worker_cap() -> tuple[int, int]:
    """(cap, CPU threads): 12 agent workers at most; threads = those this process may use (for `-n auto`)."""
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return WORKER_CAP, threads


def cap_workers(config: pytest.Config) -> None:
    """Apply the cap to -n (a number, `auto` or `logical`) before xdist reads it; say so when it bites."""
    n = getattr(config.option, "numprocesses", None)
    if n is None:
        return  # no -n, or no xdist
    cap, threads = worker_cap()
    wanted = threads if n in ("auto", "logical") else n
    if isinstance(wanted, int) and wanted > cap:
        sys.stderr.write(
            f"swebench-harness: -n {n} capped at {cap} agent workers (DESIGN: at most {WORKER_CAP}; the CPU "
            "is held under its target by the evaluation governor, not by fewer agents)\n"
        )
    if isinstance(n, int):
        config.option.numprocesses = min(n, cap)
    maxprocesses = getattr(config.option, "maxprocesses", None)
    config.option.maxprocesses = min(maxprocesses or cap, cap)
