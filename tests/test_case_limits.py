"""One case at its limits, in process, in the real fixture containers: an LLM request that hangs past
`request_timeout_s`, a shell command past `command_timeout_s` (the agent sees it and goes on), an evaluation
past `evaluation.timeout_s`; sampling settings in every request and record; and the case's labelled
containers: exactly one while it is live, none after, and removal by run label sparing everything else.

`run_case` runs with a RunContext over a dataset lock of fixture-row variants (tests.helpers.config_with_splits),
mini-swe-agent talks to the scripted server over real HTTP, and the official evaluator grades.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import yaml

from harness.config import HarnessConfig
from harness.demo.llm_server import Fault, Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.containers import (
    LABEL_CASE,
    LABEL_RUN,
    Runtime,
    fixture_image_name,
    remove_labelled_containers,
)
from harness.results.records import CaseRecord
from harness.run.case import run_case
from harness.run.context import RunContext
from harness.run.grid import Case
from tests.helpers import config_with_splits, labelled_containers

pytestmark = pytest.mark.containers
CALC = "fixtures__calc-1"
CALC_SCRIPT = FIXTURE_SCRIPTS[0]
SETTINGS = {"temperature": 0.2, "top_p": 0.9, "max_tokens": 400, "seed": 11}
COMMAND_TIMEOUT_S, EVAL_TIMEOUT_S, REQUEST_TIMEOUT_S = 3, 8, 1.0
SLOW_CONFTEST = """diff --git a/conftest.py b/conftest.py
new file mode 100644
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1,3 @@
+import time
+
+time.sleep(120)  # every test run hangs: the evaluation outlives evaluation.timeout_s
"""


def _limits(agent: dict) -> None:
    agent["agent"]["command_timeout_s"] = COMMAND_TIMEOUT_S
    agent["evaluation"]["timeout_s"] = EVAL_TIMEOUT_S
    agent["retries"].update(max_attempts=2, base_delay_s=0.1, jitter=0.0, request_timeout_s=REQUEST_TIMEOUT_S)


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer([]) as server:
        yield server


@pytest.fixture(scope="module")
def cfg(fixture_rows, llm, tmp_path_factory) -> HarnessConfig:
    """Fixture rows in locked splits; `sim` is a catalog entry (with sampling settings) served by `llm`."""
    tmp = tmp_path_factory.mktemp("case-limits")
    calc = fixture_rows[CALC]
    splits = {"fx": [calc], "slow": [{**calc, "patch": calc["patch"] + SLOW_CONFTEST}]}
    cfg_dir = config_with_splits(tmp, splits, agent=_limits)
    catalog = yaml.safe_load((cfg_dir / "model_catalog.yaml").read_text())
    catalog["models"].append(
        {"id": "sim", "kind": "litellm", "provider": "openai-compatible", "litellm_id": "openai/sim",
         "api_base": llm.url, "model_kwargs": SETTINGS}
    )  # fmt: skip
    (cfg_dir / "model_catalog.yaml").write_text(yaml.safe_dump(catalog))
    return HarnessConfig(cfg_dir, root=tmp)


@pytest.fixture
def ctx(cfg, fixture_images, tmp_path) -> Iterator[RunContext]:
    context = RunContext(
        cfg, f"limits-{uuid.uuid4().hex[:8]}", tmp_path / "runs", namespace="localhost", eval_workers=1,
        dataset_source="snapshot",
    )  # fmt: skip
    yield context
    context.close()


class ContainerWatch:
    """Polls the run's labelled containers while a case runs: the case label of each one, every 0.2 s."""

    def __init__(self, runtime, run_label: str, case_id: str):
        self.runtime, self.run_label, self.case_id = runtime, run_label, case_id
        self.seen: list[list[str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _case_labels(self) -> list[str]:
        """One `ps` for the run's containers, then each one's case label (one that vanished meanwhile is gone)."""
        labels = []
        for cid in labelled_containers(self.runtime, run_label=self.run_label):
            fmt = f'{{{{ index .Config.Labels "{LABEL_CASE}" }}}}'
            done = self.runtime.run("inspect", "--format", fmt, cid, check=False, timeout=60)
            if done.returncode == 0:
                labels.append(done.stdout.strip())
        return labels

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.seen.append(self._case_labels())
            self._stop.wait(0.2)

    def __enter__(self) -> ContainerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def assert_exactly_one_while_live(self) -> None:
        live = [labels for labels in self.seen if labels]
        assert live, f"no labelled container of run {self.run_label} was ever seen"
        wrong = [labels for labels in live if labels != [self.case_id]]
        assert wrong == [], (
            f"{len(wrong)} of {len(live)} looks saw other than one container of {self.case_id}"
        )


def _run(
    ctx: RunContext, llm: ScriptedLLMServer, split: str, model: str = "sim", script=CALC_SCRIPT, faults=()
):
    llm.scripts = [script]
    llm.add_faults(*faults)
    record = run_case(ctx, Case(model, CALC, 1, split, ("demo",), (120,)))
    assert CaseRecord.model_validate_json(ctx.paths.record(record.case_id).read_text()) == record
    assert "\n" not in record.message
    return record


def _calls(ctx: RunContext, record: CaseRecord) -> list[dict]:
    path = ctx.paths.case_artifacts(record.case_id) / "llm_calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_provider_that_hangs_past_the_request_timeout_is_an_llm_timeout(ctx, llm, runtime):
    served = llm.faults_served
    record = _run(ctx, llm, "fx", faults=(Fault("timeout", delay_s=8), Fault("timeout", delay_s=8)))
    assert llm.faults_served - served == 2
    assert (record.outcome, record.outcome_class) == ("error", "llm-timeout"), record.message
    assert "gave up after 2 attempt(s): Timeout" in record.message
    t = record.telemetry
    assert (t.calls, t.failed_calls, t.retries) == (2, 2, 1)
    calls = _calls(ctx, record)
    assert [c["attempt"] for c in calls] == [1, 2] and all("Timeout" in c["error"] for c in calls)
    assert all(REQUEST_TIMEOUT_S * 0.9 < c["latency_s"] < REQUEST_TIMEOUT_S + 2 for c in calls), calls
    assert record.errors[0]["stage"] == "agent"
    assert labelled_containers(runtime, run_label=ctx.paths.run_label) == []


def test_a_command_past_its_timeout_is_shown_to_the_agent_which_goes_on(ctx, llm, runtime):
    script = Script(match=CALC_SCRIPT.match, steps=["sleep 30", *CALC_SCRIPT.steps])
    before = len(llm.requests)
    case_id = f"sim-{CALC}-a1"
    with ContainerWatch(runtime, ctx.paths.run_label, case_id) as watch:
        record = _run(ctx, llm, "fx", script=script)
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved"), record.message
    assert record.steps == 1 + len(CALC_SCRIPT.steps) and record.agent_wall_s < 30
    second = json.dumps(llm.requests[before + 1]["body"]["messages"])
    assert f"timed out after {COMMAND_TIMEOUT_S} seconds" in second
    watch.assert_exactly_one_while_live()  # the agent's container, then the evaluator's: never two
    assert labelled_containers(runtime, run_label=ctx.paths.run_label) == []


def test_an_evaluation_past_its_timeout_is_eval_timeout_and_its_container_is_removed(ctx, llm, runtime):
    case_id = f"gold-{CALC}-a1"
    started = time.monotonic()
    with ContainerWatch(runtime, ctx.paths.run_label, case_id) as watch:
        record = _run(ctx, llm, "slow", model="gold")
    assert (record.outcome, record.outcome_class) == ("error", "eval-timeout"), record.message
    assert EVAL_TIMEOUT_S <= record.eval_wall_s < EVAL_TIMEOUT_S + 60 and time.monotonic() - started < 120
    log = (ctx.paths.root / record.artifacts["run_instance"]).read_text()
    assert f"Test timed out after {EVAL_TIMEOUT_S} seconds" in log
    assert record.errors == [{"stage": "evaluation", "error": record.message, "traceback": ""}]
    watch.assert_exactly_one_while_live()  # the evaluator's container, labelled with the run and the case
    assert labelled_containers(runtime, run_label=ctx.paths.run_label) == []


def test_sampling_settings_reach_every_request_and_the_record(ctx, llm):
    before = len(llm.requests)
    record = _run(ctx, llm, "fx")
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved"), record.message
    assert record.model_settings == SETTINGS
    stored = json.loads(ctx.paths.record(record.case_id).read_text())
    assert stored["model_settings"] == SETTINGS
    bodies = [r["body"] for r in llm.requests[before:]]
    assert len(bodies) == record.telemetry.calls == len(CALC_SCRIPT.steps)
    assert all({k: b.get(k) for k in SETTINGS} == SETTINGS for b in bodies)


def _start(runtime, *labels: str) -> str:
    flags = [arg for label in labels for arg in ("--label", label)]
    done = runtime.run("run", "-d", *flags, fixture_image_name(CALC), "sleep", "600", timeout=120)
    return done.stdout.strip()


def _remove(runtime, *ids: str) -> None:
    """One `rm` per container: podman 4.3's `rm -f A B` removes nothing at all when A is already gone."""
    for cid in ids:
        runtime.run("rm", "-f", "-t", "0", cid, check=False, timeout=120)


def test_removing_a_runs_leftovers_spares_other_runs_and_unlabelled_containers(runtime, fixture_images):
    run_a, tag = f"hyg-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:6]
    mine = [_start(runtime, f"{LABEL_RUN}={run_a}", f"{LABEL_CASE}=m-{tag}-a{k}") for k in (1, 2)]
    others = [
        _start(runtime, f"{LABEL_RUN}={run_a}-b", f"{LABEL_CASE}=m-{tag}-a1"),  # another run, a longer id
        _start(runtime, f"{LABEL_RUN}=x{run_a}", f"{LABEL_CASE}=m-{tag}-a1"),
        _start(runtime, f"{LABEL_CASE}=m-{tag}-a1"),  # a case label but no run label
        _start(runtime),  # not ours at all
    ]
    try:
        assert sorted(labelled_containers(runtime, run_label=run_a)) == sorted(mine)
        assert remove_labelled_containers(runtime, run_a) == 2
        assert labelled_containers(runtime, run_label=run_a) == []
        gone = runtime.run("ps", "-aq", "--no-trunc", check=False).stdout.split()
        assert not set(mine) & set(gone)
        for cid in others:
            state = runtime.run("inspect", "--format", "{{.State.Running}}", cid, check=False)
            assert state.stdout.strip() == "true", (cid, state.stderr)
        assert remove_labelled_containers(runtime, run_a) == 0
    finally:
        _remove(runtime, *mine, *others)


def test_a_case_id_filter_is_exact(runtime, fixture_images):
    case = f"m-{uuid.uuid4().hex[:6]}-a1"
    ids = [_start(runtime, f"{LABEL_CASE}={case}"), _start(runtime, f"{LABEL_CASE}={case}0")]
    try:
        assert labelled_containers(runtime, case_id=case) == [ids[0]]
    finally:
        _remove(runtime, *ids)


class _RacingRuntime(Runtime):
    """The real runtime, except that one container vanishes between `ps` and `rm`, as a `--rm` container
    stopped by its own cleanup (mini-swe-agent stops its container in the background) does at run end."""

    def run(self, *args: str, **kw):
        if args[:1] == ("rm",) and not getattr(self, "_raced", False):
            object.__setattr__(self, "_raced", True)
            victim = next(a for a in args[1:] if not a.startswith("-"))
            Runtime.run(self, "rm", "-f", "-t", "0", victim, check=False, timeout=120)
        return Runtime.run(self, *args, **kw)


def test_removal_survives_a_container_that_vanishes_meanwhile(runtime, fixture_images, request):
    run_id = f"race-{uuid.uuid4().hex[:8]}"
    ids = [_start(runtime, f"{LABEL_RUN}={run_id}", f"{LABEL_CASE}=c-a{k}") for k in (1, 2, 3)]
    try:
        removed = remove_labelled_containers(_RacingRuntime(runtime.executable, runtime.docker_host), run_id)
        assert labelled_containers(runtime, run_label=run_id) == [] and removed >= len(ids) - 1
    finally:
        _remove(runtime, *labelled_containers(runtime, run_label=run_id))
