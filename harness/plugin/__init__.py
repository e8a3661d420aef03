"""pytest plugin: options, markers, the case grid as parametrization, outcome mapping, run summary.

Glue only: the grid comes from harness.run.grid, a case runs in harness.run.case, the leaderboard in
harness.results.leaderboard. Each case runs inside the `case_record` fixture, so an infrastructure failure is a
pytest *error* while a model outcome is a pass (resolved) or a *failure* (anything else).
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from harness.config import HarnessConfig
from harness.config.catalog import parse_model_spec
from harness.errors import HarnessError
from harness.results.records import CaseRecord, RunPaths
from harness.run.grid import Case, build_grid, grids_named_in
from harness.run.manifest import CpuSampler, new_run_id

CASE_PROP = "harness_case"
_STATE: dict[str, object] = {}


class CaseInfraError(Exception):
    """The case failed for a reason that is not the model's: shown as a pytest error, re-run by --resume."""


def pytest_addoption(parser: pytest.Parser) -> None:
    from harness.plugin.options import add_options

    add_options(parser)


def _is_eval_session(config: pytest.Config) -> bool:
    evals = (config.rootpath / "evals").resolve()
    for arg in config.args:
        path = Path(arg.split("::")[0])
        path = (path if path.is_absolute() else Path(config.invocation_params.dir) / path).resolve()
        if path == evals or evals in path.parents:
            return True
    return False


def _is_controller(config: pytest.Config) -> bool:
    return not hasattr(config, "workerinput")


def _cap_workers(config: pytest.Config) -> None:
    n = getattr(config.option, "numprocesses", None)
    cap = max(1, int(0.8 * (os.cpu_count() or 1)))
    if isinstance(n, int) and n > cap:
        sys.stderr.write(f"swebench-harness: -n {n} capped at {cap} (80% of {os.cpu_count()} CPU threads)\n")
        config.option.numprocesses = cap


def pytest_configure(config: pytest.Config) -> None:
    if not _is_eval_session(config):
        return
    if not any(a.startswith("--show-capture") for a in config.invocation_params.args):
        config.option.showcapture = "no"  # agent and evaluator logs live in each case's artifacts
    from harness.run.start import check_instances, check_run_id, load_credentials_file, require_sweagent

    try:
        explicit = config.getoption("--credentials")
        load_credentials_file(
            Path(explicit or config.rootpath / "secrets" / "credentials.txt"), bool(explicit)
        )
        specs = [parse_model_spec(spec) for spec in config.getoption("--model-spec")]
        cfg = HarnessConfig(
            Path(config.getoption("--harness-config") or config.rootpath / "config"), extra_models=specs
        )
        models_opt = config.getoption("--models")
        models = [m.strip() for m in models_opt.split(",") if m.strip()] if models_opt else None
        cases = build_grid(cfg, models=models, attempts=config.getoption("--attempts"))
        check_instances(cfg)
        _check_numbers(config)
        backend = config.getoption("--agent") or cfg.agent.agent.backend
        _STATE.update(cfg=cfg, cases=cases, backend=backend, failures={"model": 0, "infra": 0, "other": 0})
        if backend == "sweagent" and not config.option.collectonly:
            require_sweagent()
        if _is_controller(config):
            _cap_workers(config)
            run_id = check_run_id(
                config.getoption("--resume") or config.getoption("--run-id") or new_run_id()
            )
            _STATE["run_id"] = run_id
            if not config.option.collectonly:
                _start_run(config, cfg, run_id)
        else:
            _STATE["run_id"] = config.workerinput["harness_run_id"]  # type: ignore[attr-defined]
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None


def _check_numbers(config: pytest.Config) -> None:
    if config.getoption("--infra-retries") < 0:
        raise HarnessError(f"--infra-retries {config.getoption('--infra-retries')}: use 0 or more")
    workers = config.getoption("--eval-workers")
    if workers is not None and workers < 1:
        raise HarnessError(f"--eval-workers {workers}: use 1 or more evaluation slots")


def _start_run(config: pytest.Config, cfg: HarnessConfig, run_id: str) -> None:
    from harness.run.preflight import selected_cases
    from harness.run.start import check_dataset, open_run, preflight_lines

    paths = RunPaths(_runs_dir(config), run_id)
    active = grids_named_in(config.option.markexpr, list(cfg.agent.grids))
    dataset_notes = check_dataset(
        cfg, selected_cases(_STATE["cases"], active), config.getoption("--dataset-source")
    )  # type: ignore[arg-type]
    runtime, notes = open_run(
        cfg, paths, resume=bool(config.getoption("--resume")), argv=list(config.invocation_params.args)
    )
    check = config.getoption("--check-models") != "no"
    _STATE["preflight"] = dataset_notes + notes + preflight_lines(cfg, _STATE["cases"], active, paths, check)  # type: ignore[arg-type]
    sampler = CpuSampler()
    sampler.start()
    _STATE.update(paths=paths, sampler=sampler, runtime=runtime)


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"swebench-harness: {line}" for line in _STATE.get("preflight", [])]  # type: ignore[union-attr]


def _first_set(value, default):
    return default if value is None else value


def _runs_dir(config: pytest.Config) -> Path:
    return Path(config.getoption("--runs-dir") or config.rootpath / "runs").resolve()


def pytest_configure_node(node) -> None:  # xdist hook: hand the run id to each worker
    node.workerinput["harness_run_id"] = _STATE.get("run_id", "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" not in metafunc.fixturenames or "cases" not in _STATE:
        return
    cases: list[Case] = _STATE["cases"]  # type: ignore[assignment]
    cfg: HarnessConfig = _STATE["cfg"]  # type: ignore[assignment]
    timeout = pytest.mark.timeout(cfg.agent.agent.case_timeout_s)
    params = [
        pytest.param(c, id=c.case_id, marks=[timeout, *(getattr(pytest.mark, g) for g in c.grids)])
        for c in cases
    ]
    metafunc.parametrize("case", params)


@pytest.fixture(scope="session")
def harness_run(request: pytest.FixtureRequest):
    from harness.run.context import RunContext

    config = request.config
    cfg: HarnessConfig = _STATE["cfg"]  # type: ignore[assignment]
    ctx = RunContext(
        cfg,
        str(_STATE["run_id"]),
        _runs_dir(config),
        namespace=config.getoption("--image-namespace"),
        eval_workers=_first_set(config.getoption("--eval-workers"), cfg.agent.evaluation.workers),
        dataset_source=config.getoption("--dataset-source"),
        active_grids=grids_named_in(config.option.markexpr, list(cfg.agent.grids)),
        backend=_STATE["backend"],  # type: ignore[arg-type]
    )
    yield ctx
    ctx.close()


@pytest.fixture
def case_record(case: Case, harness_run, request: pytest.FixtureRequest) -> CaseRecord:
    """Run the case (agent + official evaluation) and return its record; infra failures raise here (pytest error)."""
    from harness.run.case import execute_case, timeout_record

    started, t0 = datetime.now(UTC).isoformat(timespec="seconds"), time.monotonic()
    try:
        if case.split == "fixtures" and case.model_id != "empty":
            harness_run.ensure_fixture_images()
        record = execute_case(harness_run, case, infra_retries=request.config.getoption("--infra-retries"))
    except HarnessError as e:
        raise CaseInfraError(str(e)) from None
    except pytest.fail.Exception as e:  # pytest-timeout's whole-case limit fires inside the case
        if "Timeout" not in str(e):
            raise
        record = timeout_record(
            harness_run, case, f"case timeout: {str(e).splitlines()[0]}", started=started, t0=t0
        )
    request.node.user_properties.extend(_case_properties(record).items())
    if record.outcome == "error":
        raise CaseInfraError(f"{record.outcome_class}: {record.message}")
    if record.outcome == "skipped":
        pytest.skip(f"{record.outcome_class}: {record.message}")
    return record


def _case_properties(record: CaseRecord) -> dict[str, object]:
    return {
        CASE_PROP: record.case_id,
        "run_id": record.run_id,
        "outcome": record.outcome,
        "outcome_class": record.outcome_class,
        "agent_wall_s": record.agent_wall_s,
        "eval_queue_wait_s": record.eval_queue_wait_s,
        "eval_wall_s": record.eval_wall_s,
        "patch_sha256": record.patch_sha256,
        "infra_retries": record.infra_retries,
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--resume: cases with a model outcome on disk are deselected before anything runs."""
    run_id = config.getoption("--resume") if "cases" in _STATE else None
    if not run_id:
        return
    from harness.results.records import finished_case_ids

    finished = finished_case_ids(RunPaths(_runs_dir(config), str(run_id)))
    keep, done = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("case") if callspec else None
        (done if isinstance(case, Case) and case.case_id in finished else keep).append(item)
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """An infra error is reported as its one-line message, not as a traceback through the plugin."""
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, CaseInfraError):
        report.longrepr = f"infra error (not the model's fault): {call.excinfo.value}"
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "failures" not in _STATE or not report.failed:
        return
    failures: dict[str, int] = _STATE["failures"]  # type: ignore[assignment]
    props = dict(report.user_properties)
    if CASE_PROP in props and report.when == "call":
        failures["model"] += 1
    elif (
        CASE_PROP in props
        or report.when == "setup"
        and "[" in report.nodeid
        and "test_swebench" in report.nodeid
    ):
        failures["infra"] += 1
    else:
        failures["other"] += 1


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its file: gate testcases go into it
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    paths: RunPaths | None = _STATE.get("paths")  # type: ignore[assignment]
    if paths is None or not _is_controller(session.config):
        return
    from harness.run.context import open_ledger
    from harness.run.finish import finish_run, load_compare_run

    config = session.config
    cfg: HarnessConfig = _STATE["cfg"]  # type: ignore[assignment]
    sampler: CpuSampler = _STATE["sampler"]  # type: ignore[assignment]
    try:
        compare = load_compare_run(paths.runs_dir, config.getoption("--compare-to"))
        summary = finish_run(
            paths,
            cfg,
            active_grids=grids_named_in(config.option.markexpr, list(cfg.agent.grids)),
            cpu_samples=sampler.stop(),
            exitstatus=int(exitstatus),
            compare_to=compare,
            budget=open_ledger(cfg, paths.runs_dir, paths.run_id).summary(),
            runtime=_STATE.get("runtime"),  # type: ignore[arg-type]
        )
    except HarnessError as e:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        _STATE["end_error"] = str(e)
        return
    _STATE["summary"] = summary
    from harness.plugin.reporting import gates_to_junit

    gates_to_junit(config, summary.gates)
    failures: dict[str, int] = _STATE["failures"]  # type: ignore[assignment]
    if exitstatus == pytest.ExitCode.TESTS_FAILED and failures["infra"] == 0 and failures["other"] == 0:
        session.exitstatus = pytest.ExitCode.OK  # unresolved cases are results, not a failed run
    if summary.failed_gates and not config.getoption("--no-gates"):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """pytest wrote the JUnit file in its sessionfinish; redact secrets from it too."""
    xmlpath = getattr(config.option, "xmlpath", None)
    if xmlpath and "paths" in _STATE and _is_controller(config) and Path(xmlpath).is_file():
        from harness.infra.secrets import redact_file

        redact_file(Path(xmlpath))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    from harness.plugin.reporting import summary_lines

    if "end_error" in _STATE:
        terminalreporter.write_line(f"ERROR: {_STATE['end_error']}")
    paths: RunPaths | None = _STATE.get("paths")  # type: ignore[assignment]
    summary = _STATE.get("summary")
    if paths is None or summary is None:
        return
    terminalreporter.write_sep("=", f"swebench-harness leaderboard (run {paths.run_id})")
    infra = _STATE["failures"]["infra"]  # type: ignore[index]
    for line in summary_lines(summary, paths, infra):  # type: ignore[arg-type]
        terminalreporter.write_line(line)
