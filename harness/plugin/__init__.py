"""pytest plugin: glue between pytest's hooks and the run lifecycle (harness.run.lifecycle.EvalRun).

`pytest_configure` builds one EvalRun per process and keeps it in `config.stash`; every other hook is
a line or two that calls it. Each case runs inside the `case_record` fixture, so an infrastructure
failure is a pytest *error* while a model outcome is a pass (resolved) or a *failure* (anything else).
No run state lives in this module.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from harness.errors import CaseInfraError, HarnessError
from harness.outcomes import Outcome
from harness.plugin.options import add_options, cap_workers, is_eval_session, run_options
from harness.plugin.progress import CASE_PROP, ProgressReporter
from harness.plugin.reporting import gates_to_junit, redact_pytest_output, redact_report
from harness.results.records import CaseRecord
from harness.run.grid import Case
from harness.run.lifecycle import CaseClock, EvalRun
from harness.run.start import yield_cpu_to_servers

_CASE_ID = re.compile(r"test_swebench\[(.+)\]$")
RUN_KEY = pytest.StashKey[EvalRun]()
NEXT_ITEM = pytest.StashKey["pytest.Item | None"]()


def _run(config: pytest.Config) -> EvalRun | None:
    return config.stash.get(RUN_KEY, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config: pytest.Config):
    """Cap -n before xdist turns it into worker specs (its own pytest_cmdline_main, before any configure)."""
    if not hasattr(config, "workerinput") and is_eval_session(config):
        cap_workers(config)
    return (yield)


def pytest_configure(config: pytest.Config) -> None:
    if not is_eval_session(config):
        return
    if not any(a.startswith("--show-capture") for a in config.invocation_params.args):
        config.option.showcapture = "no"  # agent and evaluator logs live in each case's artifacts
    worker_input = getattr(config, "workerinput", None)
    try:
        options = replace(run_options(config), keywordexpr=config.option.keyword or "")
        run = EvalRun(
            options,
            worker_run_id=worker_input["harness_run_id"] if worker_input else None,
            eval_server=worker_input.get("harness_eval_server") if worker_input else None,
            agent_server=worker_input.get("harness_agent_server") if worker_input else None,
        )
        ranks = run.dispatch_ranks if _sorts(config) else None  # a malformed table: a usage error, here
        if run.is_controller and not config.option.collectonly:
            run.start()
            workers = getattr(config.option, "numprocesses", None)
            line = run.concurrency_line(workers if isinstance(workers, int) and workers else 1)
            run.header.append(line + (yield_cpu_to_servers() if run.agent_socket is not None else ""))
            if ranks is not None:
                from harness.run.shard import costs_path

                run.header.append(_one_case_at_a_time(config, costs_path(run.cfg)))
    except HarnessError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[RUN_KEY] = run
    if run.started:
        config.pluginmanager.register(RunHooks(run), "swebench-harness-run")
        config.pluginmanager.register(ProgressReporter(run.budget_summary), "swebench-harness-progress")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Everything pytest prints or logs from here on (terminal, --log-file, captured logs) is redacted."""
    if _run(session.config) is not None:
        redact_pytest_output(session.config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = _run(config)
    return [f"swebench-harness: {line}" for line in run.header] if run else []


def pytest_configure_node(node) -> None:  # xdist hook: hand the run id to each worker
    run = _run(node.config)
    if run is None:  # not an eval session (e.g. `pytest tests -n 2` in this repository)
        return
    node.workerinput["harness_run_id"] = run.run_id
    node.workerinput["harness_eval_server"] = str(run.eval_socket or "")
    node.workerinput["harness_agent_server"] = str(run.agent_socket or "")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    run = _run(metafunc.config)
    if run is None or "case" not in metafunc.fixturenames:
        return
    timeout = pytest.mark.timeout(run.cfg.agent.agent.case_timeout_s)
    marks = [(c, [timeout, *(getattr(pytest.mark, g) for g in c.grids)]) for c in run.cases]
    metafunc.parametrize("case", [pytest.param(c, id=c.case_id, marks=m) for c, m in marks])


@pytest.hookimpl(trylast=True)  # after -m and -k deselected theirs: the order is of what runs
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """--resume: cases with a model outcome on disk, --shard: other shards' cases, deselected before anything runs;
    with measured costs, the rest longest expected first (harness.run.dispatch)."""
    run = _run(config)
    finished = run.deselected_case_ids() if run else set()
    done = [item for item in items if _case_of(item) is not None and _case_of(item).case_id in finished]
    if done:
        config.hook.pytest_deselected(items=done)
        items[:] = [item for item in items if item not in done]
    ranks = run.dispatch_ranks if run and _sorts(config) else None
    if ranks:
        worker_input = getattr(config, "workerinput", None)
        _in_dispatch_order(items, ranks, int(worker_input.get("workercount", 1)) if worker_input else 1)


def _sorts(config: pytest.Config) -> bool:
    """Cases go longest expected first under xdist's load scheduling (its default with -n) or without xdist;
    the other --dist modes deal out contiguous chunks or scopes, which a sorted grid would unbalance."""
    return getattr(config.option, "dist", "no") in ("no", "load")


def _one_case_at_a_time(config: pytest.Config, table: Path) -> str:
    """xdist hands out one case at a time (its default chunks would give one worker the longest cases)."""
    line = f"dispatch: longest expected case first ({table})"
    if not getattr(config.option, "numprocesses", None) or not hasattr(config.option, "maxschedchunk"):
        return line
    if config.option.maxschedchunk is None:
        config.option.maxschedchunk = 1
    chunk = config.option.maxschedchunk
    return line + ("; xdist hands out one case at a time" if chunk == 1 else f"; --maxschedchunk {chunk}")


def _in_dispatch_order(items: list[pytest.Item], ranks: dict[str, int], workers: int) -> None:
    """The cases among `items` sorted by rank and paired for xdist's start, in the places cases held (anything
    else stays where it was)."""
    from harness.run.dispatch import paired_for_xdist

    slots = [k for k, item in enumerate(items) if (c := _case_of(item)) is not None and c.case_id in ranks]
    ordered = sorted((items[k] for k in slots), key=lambda item: ranks[_case_of(item).case_id])
    for k, item in zip(slots, paired_for_xdist(ordered, workers), strict=True):
        items[k] = item


def _case_of(item: pytest.Item | None) -> Case | None:
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("case") if callspec else None
    return case if isinstance(case, Case) else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Keep the item this process runs next: its agent starts while this case is graded (harness.run.prefetch)."""
    item.stash[NEXT_ITEM] = nextitem


@pytest.fixture(scope="session")
def harness_run(request: pytest.FixtureRequest):
    ctx = _run(request.config).context()
    yield ctx
    ctx.close()


@pytest.fixture
def case_record(case: Case, harness_run, request: pytest.FixtureRequest) -> CaseRecord:
    """Run the case (agent + official evaluation) and return its record; infra failures raise here (pytest error)."""
    run, clock = _run(request.config), CaseClock()
    try:
        record = run.run_case(harness_run, case, _case_of(request.node.stash.get(NEXT_ITEM, None)))
    except pytest.fail.Exception as e:  # pytest-timeout's whole-case limit fires inside the case
        if "Timeout" not in str(e):
            raise
        record = run.case_timed_out(harness_run, case, str(e).splitlines()[0], clock)
    request.node.user_properties.extend(_case_properties(record).items())
    if record.outcome == Outcome.ERROR:
        raise CaseInfraError(f"{record.outcome_class}: {record.message}")
    if record.outcome == Outcome.SKIPPED:
        pytest.skip(f"{record.outcome_class}: {record.message}")
    return record


def _case_properties(record: CaseRecord) -> dict[str, object]:
    return {
        CASE_PROP: record.case_id,
        "run_id": record.run_id,
        "model_id": record.model_id,
        "outcome": str(record.outcome),
        "outcome_class": record.outcome_class,
        "agent_wall_s": record.agent_wall_s,
        "eval_queue_wait_s": record.eval_queue_wait_s,
        "eval_wall_s": record.eval_wall_s,
        "patch_sha256": record.patch_sha256,
        "infra_retries": record.infra_retries,
        "llm_calls": record.telemetry.calls,
        "cost_usd": "" if record.telemetry.cost_usd is None else record.telemetry.cost_usd,
        "image_digest": record.image_digest or "",
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """An infra error is reported as its one-line message, not as a traceback through the plugin."""
    report = yield
    if call.excinfo is not None and isinstance(call.excinfo.value, CaseInfraError):
        report.longrepr = f"infra error (not the model's fault): {call.excinfo.value}"
    if _run(item.config) is not None:
        redact_report(report)  # tracebacks with locals (-l), captured output: before JUnit or xdist sees them
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    if _run(collector.config) is not None:
        redact_report(report)
    return report


class RunHooks:
    """The controller's per-run hooks, registered as a plugin object in pytest_configure (as xdist's DSession
    is): failure counting, finish, JUnit redaction and the closing summary, each delegating to the EvalRun."""

    def __init__(self, run: EvalRun):
        self.run = run
        self._estimated = False

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Without xdist the controller collects: estimate the cost of exactly the selected cases."""
        ids = {case.case_id for item in session.items if (case := _case_of(item)) is not None}
        if ids or session.items:
            self._estimate(session.config, ids)

    def pytest_xdist_node_collection_finished(self, node, ids: list[str]) -> None:
        """With xdist the workers collect; the first one to finish tells the controller what runs."""
        if not self._estimated:
            self._estimate(node.config, {m.group(1) for i in ids if (m := _CASE_ID.search(i))})

    def _estimate(self, config: pytest.Config, case_ids: set[str]) -> None:
        self._estimated = True
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        for line in self.run.estimate_lines(case_ids):
            if reporter is not None:
                reporter.write_line(f"swebench-harness: {line}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A case's call phase failing is a model outcome, its setup failing an infra error, the rest other."""
        if not report.failed:
            return
        is_case = CASE_PROP in dict(report.user_properties)
        if is_case and report.when == "call":
            self.run.failures.model += 1
        elif is_case or (
            report.when == "setup" and "[" in report.nodeid and "test_swebench" in report.nodeid
        ):
            self.run.failures.infra += 1
        else:
            self.run.failures.other += 1

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes its file: gate testcases go into it
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.run.finish(int(exitstatus))
        if self.run.summary is not None:
            gates_to_junit(session.config, self.run.summary.gates)
        session.exitstatus = self.run.exit_status(int(exitstatus))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """The reports JUnit was written from were redacted; check the file anyway (in place on a full disk)."""
        self.run.stop_servers()  # a session that ended before finish (interrupted, internal error)
        xmlpath = getattr(config.option, "xmlpath", None)
        if xmlpath and Path(xmlpath).is_file():
            from harness.infra.secrets import redact_file

            try:
                redact_file(Path(xmlpath))
            except OSError as e:
                config.get_terminal_writer().line(f"swebench-harness: cannot check {xmlpath}: {e.strerror}")

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.run.summary is not None:
            terminalreporter.write_sep("=", f"swebench-harness leaderboard (run {self.run.run_id})")
        for line in self.run.summary_lines():
            terminalreporter.write_line(line)
