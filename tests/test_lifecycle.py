"""harness.run.lifecycle: a whole run (configure, start, cases, finish, summary) driven without pytest."""

from __future__ import annotations

import json

import pytest

from harness.errors import HarnessError
from harness.infra.containers import Runtime, fixture_image_name
from harness.run.lifecycle import EvalRun, RunOptions
from tests.helpers import ROOT


def _options(tmp_path, **over) -> RunOptions:
    fields = dict(
        config_dir=ROOT / "config",
        runs_dir=tmp_path / "runs",
        credentials=tmp_path / "no-credentials.txt",
        models=("gold", "empty"),
        markexpr="demo",
        run_id="lifecycle-run",
        check_models="no",
    )
    fields.update(over)
    return RunOptions(**fields)


@pytest.mark.containers
def test_a_run_end_to_end_without_pytest(tmp_path, fixture_images):
    run = EvalRun(_options(tmp_path))
    assert run.is_controller and run.active_grids == {"demo"} and len(run.selected) == 6
    run.start()
    ctx = run.context()
    try:
        records = [run.run_case(ctx, case) for case in run.selected]
    finally:
        ctx.close()
    run.finish(0)
    assert {(r.model_id, r.outcome) for r in records} == {("gold", "resolved"), ("empty", "unresolved")}
    assert run.summary is not None and {row["model"] for row in run.summary.rows} == {"gold", "empty"}
    assert run.exit_status(1) == 0  # unresolved cases alone do not fail a run
    manifest = json.loads((tmp_path / "runs" / "lifecycle-run" / "manifest.json").read_text())
    assert manifest["cases"] == 6 and manifest["grids"] == ["demo"]
    assert any("leaderboard" in line for line in run.summary_lines())


def test_a_worker_takes_the_controllers_run_id_and_does_not_start(tmp_path):
    run = EvalRun(_options(tmp_path), worker_run_id="from-controller")
    assert not run.is_controller and run.run_id == "from-controller" and not run.started
    run.finish(0)  # a worker never finishes a run
    assert run.summary is None and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("over", "words"),
    [
        ({"infra_retries": -1}, "--infra-retries -1"),
        ({"eval_workers": 0}, "--eval-workers 0"),
        ({"run_id": "../x"}, "use letters, digits"),
        ({"models": ("nope",)}, "unknown model id 'nope'"),
        ({"markexpr": "demo or"}, "not a mark expression"),
    ],
)
def test_bad_options_are_one_harness_error(tmp_path, over, words):
    with pytest.raises(HarnessError, match=words.replace("(", r"\(")) as info:
        EvalRun(_options(tmp_path, **over))
    assert "\n" not in str(info.value)


def test_dataset_provenance_in_records_is_typed(tmp_path):
    """revision_verified is a boolean (it used to be the string "False")."""
    run = EvalRun(_options(tmp_path, models=("empty",), markexpr="i1"))
    ctx = run.context()
    try:
        ctx.row("dev", "sqlfluff__sqlfluff-1625")
        info = ctx.dataset_info["dev"]
    finally:
        ctx.close()
    assert info["revision_verified"] is False and info["fingerprint"].startswith("sha256:")


@pytest.mark.containers
def test_fixture_images_are_checked_once_per_run_and_again_when_it_resumes(
    tmp_path, runtime, fixture_images, monkeypatch
):
    import harness.infra.containers as containers
    import harness.run.context as context

    checks, repos = [], []
    real = containers.build_fixture_images
    monkeypatch.setattr(containers, "build_fixture_images", lambda *a, **k: checks.append(1) or real(*a, **k))
    written = context.RunContext._write_fixture_repos
    monkeypatch.setattr(
        context.RunContext, "_write_fixture_repos", lambda self: repos.append(1) or written(self)
    )
    run = EvalRun(_options(tmp_path))
    run.start()
    assert run.fixture_check is not None
    run.fixture_check.join(timeout=300)  # the controller checks while xdist starts the workers
    assert len(checks) == 1 and len(repos) == 1
    rows_file, marker = run.paths.fixture_rows, run.paths.fixture_images_checked
    assert json.loads(rows_file.read_text()) == fixture_images  # the rows, for the workers
    contexts = [run.context() for _ in range(3)]  # as in three worker processes of one run
    try:
        contexts[0].ensure_fixture_images()
        contexts[1].ensure_fixture_images()  # read the controller's marker and rows
        assert len(checks) == 1 and len(repos) == 1  # no check and no git repos in the workers
        assert contexts[0].row("fixtures", "fixtures__calc-1") == fixture_images["fixtures__calc-1"]
        # the controller also wrote the images' ids for the run: the workers do not ask the runtime for them
        contexts[1]._runtime = Runtime("/nonexistent/podman", None)  # would raise FileNotFoundError if asked
        for instance_id in fixture_images:
            image = fixture_image_name(instance_id)
            inspected = runtime.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
            assert contexts[1].image_digest(image) == inspected
        assert {commit for _, commit in json.loads(marker.read_text())} == {
            row["base_commit"] for row in fixture_images.values()
        }
        marker.write_text("[]")  # checked for other commits: check again (writing the repos to build from)
        contexts[2].ensure_fixture_images()
        assert len(checks) == 2 and len(repos) == 2
    finally:
        for ctx in contexts:
            ctx.close()
    run.finish(0)
    assert marker.is_file()
    run._owner.close()  # the process that ran the session would exit here, releasing the run
    rows_file.write_text("{}")  # a stale file: the resumed session must not read it
    resumed = EvalRun(_options(tmp_path, run_id=None, resume="lifecycle-run"))
    resumed.start()
    resumed.fixture_check.join(timeout=300)
    resumed.stop_servers()
    assert len(checks) == 3  # images may have changed between sessions: checked again
    assert json.loads(rows_file.read_text()) == fixture_images
