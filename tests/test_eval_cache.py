"""The content-addressed evaluation cache: keys, intact and torn entries, concurrent writers, and two demo
runs in a row through the real evaluator."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.infra.eval_cache import PROBE_VERSION, EvalCache, cache_key, spec_hash
from tests.helpers import run_evals

ROW = {"instance_id": "o__r-1", "repo": "o/r", "version": "1.0", "test_patch": "tp", "FAIL_TO_PASS": "[]"}


def _logs(folder: Path, verdict: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps({"o__r-1": {"resolved": verdict}}))
    (folder / "test_output.txt").write_text("PASSED t\n")
    return folder


def test_the_key_follows_patch_image_evaluator_and_spec():
    base = cache_key(ROW, "diff\n", "sha256:img", "4.1.0")
    for variant in ("diff\r\n", "diff", "diff\n\n"):  # the evaluator gets the exact bytes: so does the key
        assert cache_key(ROW, variant, "sha256:img", "4.1.0") != base
    # An entry written under the version-1 key (patch normalized: maybe graded from "diff\r\n") is not found.
    v1 = {"instance_id": ROW["instance_id"], "patch_sha256": hashlib.sha256(b"diff\n").hexdigest(),
          "image_digest": "sha256:img", "evaluator": f"4.1.0+{PROBE_VERSION}", "spec": spec_hash(ROW)}  # fmt: skip
    assert hashlib.sha256(json.dumps(v1, sort_keys=True).encode()).hexdigest() != base
    assert cache_key(ROW, "diff2\n", "sha256:img", "4.1.0") != base
    assert cache_key(ROW, "diff\n", "sha256:other", "4.1.0") != base
    assert cache_key(ROW, "diff\n", "sha256:img", "4.2.0") != base
    assert cache_key({**ROW, "test_patch": "tp2"}, "diff\n", "sha256:img", "4.1.0") != base
    assert cache_key({**ROW, "instance_id": "o__r-2"}, "diff\n", "sha256:img", "4.1.0") != base


def test_store_then_lookup_copies_the_files_and_names_the_source(tmp_path):
    cache = EvalCache(tmp_path / "cache")
    assert cache.store("k" * 64, _logs(tmp_path / "a"), {"run_id": "r1", "case_id": "c1"})
    assert not cache.store("k" * 64, _logs(tmp_path / "b"), {"run_id": "r2", "case_id": "c2"})  # first wins
    hit = cache.lookup("k" * 64, tmp_path / "out")
    assert hit is not None and (hit.meta["run_id"], hit.meta["case_id"]) == ("r1", "c1")
    assert json.loads((tmp_path / "out" / "report.json").read_text()) == {"o__r-1": {"resolved": True}}
    assert cache.lookup("0" * 64, tmp_path / "none") is None
    assert not cache.store("j" * 64, tmp_path / "empty-dir", {})  # nothing evaluated: nothing stored


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: (e / "report.json").write_text('{"o__r-1": {"resolved": false}}'),  # edited
        lambda e: (e / "report.json").unlink(),  # half deleted
        lambda e: (e / "meta.json").write_text("{torn"),  # torn meta
        lambda e: (e / "meta.json").unlink(),  # never finished
    ],
)
def test_a_damaged_entry_is_ignored_and_replaced(tmp_path, damage):
    cache = EvalCache(tmp_path / "cache")
    key = "a" * 64
    cache.store(key, _logs(tmp_path / "a"), {"run_id": "r1", "case_id": "c1"})
    damage(tmp_path / "cache" / key[:2] / key)
    assert cache.lookup(key, tmp_path / "out") is None
    assert cache.store(key, _logs(tmp_path / "b", verdict=False), {"run_id": "r2", "case_id": "c2"})
    hit = cache.lookup(key, tmp_path / "out2")
    assert hit is not None and hit.meta["run_id"] == "r2"


def _race(args) -> bool:
    root, logs, n = args
    return EvalCache(Path(root)).store("b" * 64, Path(logs), {"run_id": f"r{n}", "case_id": "c"})


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
    logs = _logs(tmp_path / "a")
    with multiprocessing.get_context("fork").Pool(8) as pool:
        won = pool.map(_race, [(str(tmp_path / "cache"), str(logs), n) for n in range(16)])
    assert sum(won) == 1
    assert EvalCache(tmp_path / "cache").lookup("b" * 64, tmp_path / "out") is not None
    leftovers = [p.name for p in (tmp_path / "cache" / "bb").iterdir()]
    assert leftovers == ["b" * 64]  # no temporary directories left behind


def _demo(tmp_path, run_id: str, *extra: str) -> dict[str, dict]:
    done = run_evals(
        "-m", "demo", "--models", "gold", "--runs-dir", str(tmp_path / "runs"), "--run-id", run_id, *extra,
        env={"HARNESS_EVAL_CACHE": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    return {p.stem: json.loads(p.read_text()) for p in (tmp_path / "runs" / run_id / "cases").glob("*.json")}


@pytest.mark.containers
def test_two_demo_runs_in_a_row_then_no_cache_then_a_corrupt_entry(fixture_images, tmp_path):
    first = _demo(tmp_path, "one")
    assert {r["eval_cache"] for r in first.values()} == {"miss"}
    second = _demo(tmp_path, "two")
    for case_id, rec in second.items():
        assert rec["eval_cache"] == "hit" and rec["eval_cache_source"] == f"one/{case_id}"
        assert rec["eval_wall_s"] < 1.0 and rec["eval_queue_wait_s"] == 0.0
        assert (rec["outcome"], rec["tests_status"]) == (
            first[case_id]["outcome"],
            first[case_id]["tests_status"],
        )
        assert (
            tmp_path / "runs" / "two" / rec["artifacts"]["report"]
        ).is_file()  # the evidence is in the run
    fresh = _demo(tmp_path, "three", "--no-eval-cache")
    assert {r["eval_cache"] for r in fresh.values()} == {"off"}
    assert all(r["eval_wall_s"] > 0.3 and r["outcome"] == "resolved" for r in fresh.values())
    for entry in (tmp_path / "cache").glob("*/*/report.json"):
        entry.write_text('{"fixtures__calc-1": {"resolved": false}}')  # every entry corrupted
    again = _demo(tmp_path, "four")
    assert {r["eval_cache"] for r in again.values()} == {"miss"}  # ignored, graded afresh
    assert {r["outcome"] for r in again.values()} == {"resolved"}


SWEBENCH_APPLY = ("git apply --verbose", "git apply --verbose --reject", "patch --batch --fuzz=5 -p1 -i")
"""swebench 4.1.0's run_evaluation.GIT_APPLY_CMDS, tried in turn on the patch file (checked below)."""


def _applies(repo: Path, patch: str, tmp: Path) -> bool:
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=repo, check=True)
    (tmp / "patch.diff").write_bytes(patch.encode())
    return any(
        subprocess.run([*cmd.split(), str(tmp / "patch.diff")], cwd=repo, capture_output=True).returncode == 0
        for cmd in SWEBENCH_APPLY
    )


@pytest.mark.skipif(shutil.which("patch") is None, reason="GNU patch is not installed")
def test_diffs_that_differ_only_in_line_endings_apply_differently_so_they_get_different_keys(tmp_path):
    """A diff of a file with CRLF line endings carries the CRs; the same diff with them stripped (a predictions
    file saved by another tool) applies with none of swebench's commands. The key used to normalize CRLF, so
    whichever of the two was graded first answered for both."""
    from swebench.harness.run_evaluation import GIT_APPLY_CMDS

    assert tuple(GIT_APPLY_CMDS) == SWEBENCH_APPLY
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "core.autocrlf=false"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "lines.txt").write_bytes(b"one\r\ntwo\r\nthree\r\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "crlf file"], cwd=repo, check=True)
    (repo / "lines.txt").write_bytes(b"one\r\nTWO\r\nthree\r\n")
    with_crs = subprocess.run([*git, "diff"], cwd=repo, capture_output=True, check=True).stdout.decode()
    without_crs = with_crs.replace("\r\n", "\n")
    assert "\r" in with_crs and with_crs != without_crs
    assert _applies(repo, with_crs, tmp_path)
    assert not _applies(repo, without_crs, tmp_path)
    keys = {cache_key(ROW, patch, "sha256:img", "4.1.0") for patch in (with_crs, without_crs)}
    assert len(keys) == 2
