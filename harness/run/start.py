"""The start of a run, in the controller: credentials, runtime, resume checks, the run's owner lock,
leftovers, preflight, manifest.

Everything here raises HarnessError (one line); the plugin turns it into a pytest usage error.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from pathlib import Path
from typing import IO

from harness.config import HarnessConfig
from harness.errors import HarnessError, one_line
from harness.infra.containers import Runtime, detect_runtime, remove_labelled_containers
from harness.results.records import RunPaths, stale_markers
from harness.run.grid import Case
from harness.run.manifest import start_manifest


def load_credentials_file(path: Path, explicit: bool) -> None:
    from harness.infra.secrets import load_credentials, register_env_secrets

    if explicit and not path.is_file():
        raise HarnessError(f"--credentials {path}: no such file; copy secrets/credentials.example.txt")
    load_credentials(path)
    register_env_secrets()


def register_model_keys(cfg: HarnessConfig) -> list[str]:
    """Register for redaction every variable a model or provider names as its key (whatever its name), and
    secret-like entries of the agents' own .env files; returns run-header notes about what was found."""
    from harness.config.catalog import PROVIDER_DEFAULTS, provider_settings
    from harness.infra.secrets import (
        agent_dotenv_files,
        register_dotenv_secrets,
        register_named_secrets,
        short_secret_lines,
    )

    providers = [*PROVIDER_DEFAULTS.values(), *cfg.catalog.providers.values()]
    names = {provider_settings(cfg.catalog, m).api_key_env for m in cfg.catalog.models}
    names = {n for n in names | {p.api_key_env for p in providers} if n}
    register_named_secrets(names)
    notes = []
    for path in agent_dotenv_files():
        if found := register_dotenv_secrets([path], names):
            notes.append(
                f"{path} (an agent's own .env) holds {', '.join(found)}: keep keys in secrets/credentials.txt "
                "only; these are hidden in output too"
            )
    return notes + short_secret_lines()


def require_sweagent() -> None:
    from harness.agents.sweagent_inputs import sweagent_problem

    if (problem := sweagent_problem()) is not None:
        raise HarnessError(
            f"--agent sweagent: {problem}; run `make sweagent` (SWE-agent 1.1.0 from its git tag, see README)"
        )


def check_instances(cfg: HarnessConfig) -> None:
    from harness.infra.dataset import load_lock, snapshot_instance_ids
    from harness.run.grid import check_instances_exist

    if not cfg.slices:
        return
    lock = load_lock(cfg.lock_path)
    splits = {inst.split for sl in cfg.slices.values() for inst in sl.instances}
    check_instances_exist(cfg, {s: set(snapshot_instance_ids(lock, s, cfg.root)) for s in splits})


RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_run_id(run_id: str) -> str:
    """Run ids name folders and container names: letters, digits, '.', '_', '-'."""
    if not RUN_ID.match(run_id):
        raise HarnessError(
            f"--run-id/--resume {run_id!r}: use letters, digits, '.', '_' and '-' only (it names folders and containers)"
        )
    return run_id


def check_dataset(cfg: HarnessConfig, cases: list[Case], source: str) -> list[str]:
    """Load (and fingerprint-check) every dataset split the selected cases need, before any case starts."""
    from harness.infra.dataset import load_lock, load_split

    splits = sorted({c.split for c in cases if c.split != "fixtures"})
    if not splits:
        return []
    lock = load_lock(cfg.lock_path)
    return [f"dataset {s}: {load_split(lock, s, cfg.root, source=source).source}" for s in splits]  # type: ignore[arg-type]


def open_run(
    cfg: HarnessConfig, paths: RunPaths, *, resume: bool, argv: list[str]
) -> tuple[Runtime, list[str], IO[str]]:
    """Check the run folder, take ownership of it, clean this run's leftovers, write the manifest.

    Returns the runtime, notes for the header, and the owner lock (keep it open for the process's life).
    """
    if resume and not paths.manifest.exists():
        raise HarnessError(
            f"--resume {paths.run_id}: no run at {paths.root}; list runs with `ls {paths.runs_dir}`"
        )
    if not resume and paths.root.exists() and any(paths.cases.glob("*.json")):
        raise HarnessError(
            f"run {paths.run_id} already has records in {paths.root}; use --resume {paths.run_id} or another --run-id"
        )
    owner = claim_run(paths)  # before anything below touches the run's files or containers
    if resume:
        check_manifest(paths)
    runtime = detect_runtime()
    runtime.export_env()
    notes = []
    if removed := remove_labelled_containers(runtime, paths.run_label):
        notes.append(f"removed {removed} leftover container(s) of run {paths.run_id}")
    paths.fixture_images_checked.unlink(missing_ok=True)  # images may have changed since
    paths.fixture_rows.unlink(missing_ok=True)  # and the harness's fixtures with them
    paths.image_ids.unlink(missing_ok=True)
    if stale := recover_interrupted(paths):
        notes.append(f"{len(stale)} case(s) were running when the last process died; they run again")
    start_manifest(paths, cfg, argv=argv, resume=resume, interrupted=stale)
    return runtime, notes, owner


OWNER_FILE = ".owner"


def claim_run(paths: RunPaths) -> IO[str]:
    """A run has one owner: an exclusive flock on runs/<id>/.owner, held until this process exits.

    A second process (a `--resume` of a run that is still running) gets a one-line refusal naming the
    owner instead of setting the live cases' files aside and removing their containers.
    """
    paths.root.mkdir(parents=True, exist_ok=True)
    handle = open(paths.root / OWNER_FILE, "a+")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = one_line(handle.read(), None) or "another process"
        handle.close()
        raise HarnessError(
            f"run {paths.run_id} is running in another process ({holder}); wait for it to end "
            f"(or stop it), then --resume {paths.run_id}"
        ) from None
    handle.seek(0)
    handle.truncate()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    handle.write(f"pid {os.getpid()} on {os.uname().nodename} since {started}\n")
    handle.flush()
    return handle


def check_manifest(paths: RunPaths) -> None:
    """The manifest of a run to resume must be a JSON object (a torn or foreign file is a one-line error)."""
    try:
        manifest = json.loads(paths.manifest.read_bytes())
    except ValueError as e:
        problem = f"not JSON ({' '.join(str(e).split())[:80]})"
    else:
        if isinstance(manifest, dict) and manifest.get("run_id") in (None, paths.run_id):
            return
        problem = "not a run manifest" if not isinstance(manifest, dict) else "the manifest of another run"
    raise HarnessError(
        f"--resume {paths.run_id}: {paths.manifest} is {problem}; restore it from a backup, or start a new "
        "run with --run-id (the records in cases/ are kept)"
    )


def recover_interrupted(paths: RunPaths) -> list[str]:
    """Cases whose running marker outlived its process: keep their partial artifacts aside, drop the marker."""
    from harness.results.records import marker_path
    from harness.run.case import set_aside

    stale = stale_markers(paths)
    for case_id in stale:
        set_aside(paths.case_artifacts(case_id), "interrupted")
        marker_path(paths, case_id).unlink(missing_ok=True)
    return stale


def preflight_lines(
    cfg: HarnessConfig, selected: list[Case], paths: RunPaths, check_models: bool
) -> list[str]:
    """Credentials and provider availability of the models of the selected cases (the cost estimate
    comes after collection, when -k is known: EvalRun.estimate_lines)."""
    from harness.run.preflight import check_availability, credential_lines, selected_models

    models = selected_models(cfg, selected)
    lines = credential_lines(cfg, models)
    return lines + (check_availability(cfg, models, paths) if check_models else [])


COORDINATOR_NICE = 10
"""CPU priority step (nice) of the controller and its xdist workers when the run has an agent server."""


def yield_cpu_to_servers() -> str:
    """Lower this process's CPU priority, before xdist starts its workers (they inherit it); the run-header note.

    With an agent server, the controller and its workers only coordinate: agents run in the agent server's
    forks, evaluations in the evaluation server's, commands in containers (none of them inherit this). On a
    small machine the workers' start-up (pytest, the harness, collection: ~1 CPU-s each) otherwise competes
    with the agent server's one import that every first case waits for; on the pipeline benchmark (2 cores,
    6 workers) the first cases waited ~4.5 s for it, ~0.7 s with the workers at +10. Lowering is allowed to any
    user; raising it back is not, so it stays for the session."""
    if not hasattr(os, "nice"):
        return ""
    now = os.nice(COORDINATOR_NICE)
    return f"; controller and workers at nice {now} (they coordinate; the servers' forks and containers do the work)"
