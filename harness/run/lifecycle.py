"""The run lifecycle: one `EvalRun` per process owns a run from configure to summary.

In the spirit of pytest-xdist's DSession and pytest-benchmark's BenchmarkSession: the pytest plugin
builds one in `pytest_configure`, keeps it in `config.stash`, and each hook calls one of its methods.
Nothing here imports pytest: `RunOptions` carries what the command line said, so the whole lifecycle
(configure, start, run a case, finish, summary) runs and is tested without pytest.

Controller and xdist workers both configure (config, grid, credentials); only the controller starts
the run (run folder, manifest, pre-flight, CPU sampler) and finishes it (records -> leaderboard, gates).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from pathlib import Path
from typing import IO, TYPE_CHECKING

from harness.config import HarnessConfig
from harness.config.catalog import parse_model_spec
from harness.errors import CaseInfraError, HarnessError
from harness.results.records import CaseRecord, RunPaths, disk_error, finished_case_ids
from harness.run.grid import Case, build_grid, cases_selected_by, grids_selected_by, keyword_selected
from harness.run.manifest import CpuSampler, new_run_id
from harness.run.options import RunOptions, check_numbers
from harness.run.prefetch import AgentPrefetch

if TYPE_CHECKING:
    from harness.agents.server import AgentServer
    from harness.infra.containers import Runtime
    from harness.infra.eval_server import EvalServer
    from harness.run.context import RunContext
    from harness.run.finish import RunSummary
    from harness.run.shard import ShardPlan


@dataclass
class FailureCounts:
    """pytest failures seen by the controller: model outcomes, infra errors, anything else (a harness bug)."""

    model: int = 0
    infra: int = 0
    other: int = 0


@dataclass
class CaseClock:
    started: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    t0: float = field(default_factory=time.monotonic)


class EvalRun:
    """One run as seen by one process. Raises HarnessError (one line) for anything the user can fix."""

    def __init__(
        self,
        options: RunOptions,
        *,
        worker_run_id: str | None = None,
        eval_server: str | None = None,
        agent_server: str | None = None,
    ):
        from harness.run.start import (
            check_instances,
            check_run_id,
            load_credentials_file,
            register_model_keys,
            require_sweagent,
        )

        self.options = options
        self.is_controller = worker_run_id is None
        load_credentials_file(options.credentials, options.credentials_explicit)
        from harness.agents.predictions import parse_predictions_option

        specs = [parse_model_spec(spec) for spec in options.model_specs]
        predicted = [parse_predictions_option(option) for option in options.predictions]
        extra = [*specs, *predicted, *options.extra_models]
        self.cfg = HarnessConfig(options.config_dir, extra_models=extra)
        self.key_notes = register_model_keys(self.cfg)
        models = list(options.models) if options.models else None
        self.cases: list[Case] = build_grid(
            self.cfg, models=models, attempts=options.attempts, add_models=[m.id for m in predicted]
        )
        self.selected = cases_selected_by(options.markexpr, self.cases)
        """The cases -m selects, narrowed by --shard (-k is applied by pytest later; pre-flight counts these)."""
        self.active_grids = grids_selected_by(options.markexpr, self.cases)
        check_instances(self.cfg)
        check_numbers(options, self.cfg.agent.evaluation.workers)
        self.backend = options.agent or self.cfg.agent.agent.backend
        self.shard_plan = self._plan_shard()
        if self.shard_plan is not None:
            self.selected = self.shard_plan.cases
        if not options.collect_only:
            from harness.infra.modal import check_modal_options

            check_modal_options(
                options.eval_backend, options.agent_env, self.backend, self.selected, options.image_namespace
            )
        if self.backend == "sweagent" and not options.collect_only:
            require_sweagent()
        if self.backend == "mini":
            from harness.agents.mini import mini_config_path

            mini_config_path(self.cfg.agent.agent.mini_config, self.cfg.dir)
        self.run_id = check_run_id(worker_run_id or options.resume or options.run_id or new_run_id())
        self.paths = RunPaths(options.runs_dir, self.run_id)
        self.failures = FailureCounts()
        self.header: list[str] = []
        self.started = False
        self.summary: RunSummary | None = None
        self.end_error: str | None = None
        self._sampler: CpuSampler | None = None
        self._runtime: Runtime | None = None
        self._owner: IO[str] | None = None
        """The run's owner lock (harness.run.start.claim_run), held until this process exits."""
        self._ledger = None
        self._eval_server: EvalServer | None = None
        self._prefetch = AgentPrefetch()
        self.eval_socket: Path | None = Path(eval_server) if eval_server else None
        """The run's evaluation server (harness.infra.eval_server); None: this process evaluates itself."""
        self._agent_server: AgentServer | None = None
        self.agent_socket: Path | None = Path(agent_server) if agent_server else None
        """The run's agent server (harness.agents.server); None: mini-swe-agent runs in this process."""
        self.fixture_check: threading.Thread | None = None  # harness.run.context.check_fixture_images

    # -- start (controller) -------------------------------------------------------------------------

    def start(self) -> None:
        """Check the dataset, open the run folder (or resume it), pre-flight the models, sample the CPU."""
        from harness.infra.images import add_image_ids
        from harness.run.context import open_ledger
        from harness.run.start import check_dataset, open_run, preflight_lines

        notes = check_dataset(self.cfg, self.selected, self.options.dataset_source)
        ids: dict[str, str] = {}  # image -> id of the images checked, for the workers (RunPaths.image_ids)
        to_run = self.cases_to_run()
        notes += self.check_images(ids, to_run)
        try:
            self._runtime, opened, self._owner = open_run(
                self.cfg, self.paths, resume=bool(self.options.resume), argv=list(self.options.argv)
            )
            open_ledger(
                self.cfg, self.paths.runs_dir, self.run_id
            )  # a HARNESS_LEDGER_URL server must answer now
            add_image_ids(self.paths.image_ids, ids)  # after open_run cleared the last session's
            check = self.options.check_models != "no"
            preflight = preflight_lines(self.cfg, self.selected, self.paths, check)
        except OSError as e:  # a read-only or full runs dir: one line, not INTERNALERROR
            raise HarnessError(
                f"cannot write the run folder {e.filename or self.paths.root} ({e.strerror or e}); "
                "use a writable --runs-dir with free space"
            ) from None
        self.header = notes + opened + self.key_notes + preflight
        if self.shard_plan is not None:
            from harness.run.shard import record_shard

            self.header.append(self.shard_plan.note)
            record_shard(self.paths, self.shard_plan)
        self._sampler = CpuSampler()
        self._sampler.start()
        if self.options.eval_backend == "docker":
            from harness.infra.eval_server import EvalServer

            self._eval_server = EvalServer.start()
            self.eval_socket = self._eval_server.socket_path
        if self.options.agent_server and self.runs_llm_agents():
            from harness.agents.server import AgentServer

            self._agent_server = AgentServer.start()
            self.agent_socket = self._agent_server.socket_path
        if self._runtime is not None and any(c.needs_fixture_images for c in to_run):
            from harness.run.context import check_fixture_images  # while xdist starts the workers

            check = partial(check_fixture_images, self.cfg, self.run_id, self.options.runs_dir, self._runtime)
            self.fixture_check = threading.Thread(target=check, name="harness-fixture-images", daemon=True)
            self.fixture_check.start()
        self.started = True

    def runs_llm_agents(self) -> bool:
        """Whether mini-swe-agent talks to a model in this run (its imports are then worth loading once)."""
        return self.backend == "mini" and any(
            self.cfg.catalog.get(c.model_id).kind in LLM_KINDS for c in self.selected
        )

    def stop_servers(self) -> None:
        if self._eval_server is not None:
            self._eval_server.stop()
            self._eval_server = None
        if self._agent_server is not None:
            self._agent_server.stop()
            self._agent_server = None

    def image_needs(self, cases: list[Case]):
        """The instance images `cases` need (harness.infra.images.ImageNeed), in this run's namespace."""
        from harness.infra.images import images_for

        kind = self.cfg.catalog.get
        return images_for(cases, self.options.image_namespace, lambda m: kind(m).kind, self.backend)

    def check_images(self, ids: dict[str, str], cases: list[Case]) -> list[str]:
        """Before any case: the images of the cases that will run (-m, -k, --resume; not the ones skipped for
        quarantine or a missing key) are present or pulled, else one HarnessError line says which and how.
        `cases`: `cases_to_run()`; `ids` receives image -> id of each pulled image checked."""
        from harness.infra.containers import detect_runtime
        from harness.infra.images import check_before_run

        hint = f"-m {self.options.markexpr}" if self.options.markexpr else "-m GRID"
        return check_before_run(detect_runtime, self.image_needs(cases), hint, ids)

    def cases_to_run(self) -> list[Case]:
        """The cases that will run (-m, -k, --resume), less the ones skipped for quarantine or a missing key."""
        from harness.config.catalog import missing_key

        quarantined = set() if self.options.include_quarantined else set(self.cfg.quarantined())
        done = self.finished_case_ids()
        return [
            c
            for c in keyword_selected(self.options.keywordexpr, self.selected)
            if c.instance_id not in quarantined
            and c.case_id not in done
            and not missing_key(self.cfg.catalog, self.cfg.catalog.get(c.model_id))
        ]

    def estimate_lines(self, case_ids: set[str]) -> list[str]:
        """The pre-flight cost estimate of the cases pytest will run (after -m, -k and --resume)."""
        from harness.run.preflight import estimate_lines, selected_models

        cases = [c for c in self.cases if c.case_id in case_ids]
        return estimate_lines(self.cfg, cases, selected_models(self.cfg, cases))

    def concurrency_line(self, agent_workers: int) -> str:
        """What the run chose for its two knobs, and why (the terminal header)."""
        slots = self.options.eval_workers or self.cfg.agent.evaluation.workers
        target = self.cfg.agent.evaluation.cpu_target_percent
        admit = f"beyond the first only while CPU < {target:g}%" if target else "without a CPU governor"
        return (
            f"concurrency: {agent_workers} agent worker(s) (LLM-bound); up to {slots} evaluation slot(s) "
            f"shared by them, {admit} (config evaluation.workers / cpu_target_percent, --eval-workers)"
        )

    @cached_property
    def dispatch_ranks(self) -> dict[str, int] | None:
        """case_id -> dispatch position, longest expected first (harness.run.dispatch); None keeps grid order."""
        from harness.run.dispatch import dispatch_ranks

        return dispatch_ranks(self.cfg, self.cases, backend=self.backend, active_grids=self.active_grids)

    def finished_case_ids(self) -> set[str]:
        """Cases of a resumed run that already have a model outcome (deselected before anything runs)."""
        return finished_case_ids(self.paths) if self.options.resume else set()

    def deselected_case_ids(self) -> set[str]:
        """What pytest must not run: finished cases of a resumed run, and with --shard the other shards' cases."""
        if self.shard_plan is None:
            return self.finished_case_ids()
        mine = {c.case_id for c in self.shard_plan.cases}
        return self.finished_case_ids() | {c.case_id for c in self.cases if c.case_id not in mine}

    def _plan_shard(self) -> ShardPlan | None:
        if self.options.shard is None:
            return None
        from harness.run.shard import Shard, plan_shard

        shard = Shard.parse(self.options.shard)
        return plan_shard(
            self.cfg, self.selected, shard, backend=self.backend, active_grids=self.active_grids
        )

    # -- cases (every process) ----------------------------------------------------------------------

    def context(self) -> RunContext:
        """This process's RunContext (runtime, rows, ledger, scripted server), made lazily on first use."""
        from harness.run.context import RunContext, warm_llm_imports

        workers = self.options.eval_workers
        if self.agent_socket is None and self.runs_llm_agents():
            warm_llm_imports()  # no agent server: mini-swe-agent runs in this process
        return RunContext(
            self.cfg,
            self.run_id,
            self.options.runs_dir,
            namespace=self.options.image_namespace,
            eval_workers=self.cfg.agent.evaluation.workers if workers is None else workers,
            dataset_source=self.options.dataset_source,
            active_grids=self.active_grids,
            backend=self.backend,
            strict_integrity=self.options.strict_integrity,
            include_quarantined=self.options.include_quarantined,
            eval_cache=self.options.eval_cache,
            eval_backend=self.options.eval_backend,
            agent_env=self.options.agent_env,
            eval_server=self.eval_socket,
            agent_server=self.agent_socket,
        )

    def run_case(self, ctx: RunContext, case: Case, next_case: Case | None = None) -> CaseRecord:
        """One case end to end; its record is on disk when this returns. Infra trouble raises CaseInfraError.

        `next_case` (the case this process runs next): its agent starts as soon as this case's agent is done,
        while this case is graded (harness.run.prefetch).
        """
        from harness.run.case import execute_case

        def start_next() -> None:
            if next_case is not None and self.options.prefetch:
                self._prefetch.start(ctx, next_case)

        try:
            agent = self._prefetch.take(case.case_id)
            if agent is None:  # a prefetched agent saw to them in its thread
                ctx.ensure_images_for(case)
            return execute_case(
                ctx, case, infra_retries=self.options.infra_retries, agent=agent, after_agent=start_next
            )
        except HarnessError as e:
            raise CaseInfraError(str(e)) from None
        except OSError as e:  # a full disk (or a folder gone read-only) while writing the case's files
            raise CaseInfraError(disk_error(Path(e.filename or self.paths.root), e, self.run_id)) from None

    def case_timed_out(self, ctx: RunContext, case: Case, message: str, clock: CaseClock) -> CaseRecord:
        """The record of a case stopped by the whole-case limit (an infra error, re-run by --resume)."""
        from harness.run.case import timeout_record

        return timeout_record(ctx, case, f"case timeout: {message}", started=clock.started, t0=clock.t0)

    # -- finish and summary (controller) ------------------------------------------------------------

    def finish(self, exitstatus: int) -> None:
        """Records -> predictions, leaderboard, gates, manifest; a HarnessError here is kept as end_error."""
        if not self.started:
            return
        from harness.run.finish import finish_run, load_compare_run

        self.stop_servers()  # every case has its verdict by now
        samples = self._sampler.stop() if self._sampler else []
        try:
            self.summary = finish_run(
                self.paths,
                self.cfg,
                active_grids=self.active_grids,
                cpu_samples=samples,
                cpu_harness_samples=self._sampler.harness_samples if self._sampler else [],
                exitstatus=exitstatus,
                compare_to=load_compare_run(self.paths.runs_dir, self.options.compare_to),
                budget=self.budget_summary(),
                runtime=self._runtime,
                compare_to_id=self.options.compare_to,
            )
        except HarnessError as e:
            self.end_error = str(e)
        except OSError as e:  # a full disk at the end: the records are safe, the views can be rebuilt
            self.end_error = (
                f"cannot write {e.filename or self.paths.root} ({e.strerror or e}); free space, then rebuild "
                f"the leaderboard with `python -m harness leaderboard {self.paths.root}`"
            )

    def budget_summary(self) -> dict:
        """The budget ledger's figures for this run (LLM calls, USD, daily quotas): live progress reads it."""
        from harness.run.context import open_ledger

        if self._ledger is None:
            self._ledger = open_ledger(self.cfg, self.paths.runs_dir, self.run_id)
        return self._ledger.summary()

    def exit_status(self, pytest_status: int) -> int:
        """Unresolved cases are results, not a failed run: the gates decide (1 = tests failed, 4 = usage)."""
        if self.end_error is not None:
            return 4
        if self.summary is None:
            return pytest_status
        status = pytest_status
        if pytest_status == 1 and self.failures.infra == 0 and self.failures.other == 0:
            status = 0
        if self.summary.failed_gates and not self.options.no_gates:
            status = 1
        return status

    def summary_lines(self) -> list[str]:
        from harness.run.finish import summary_lines

        lines = [f"ERROR: {self.end_error}"] if self.end_error else []
        if self.summary is None:
            return lines
        return lines + summary_lines(self.summary, self.paths, self.failures.infra)


LLM_KINDS = ("scripted", "litellm")
