"""The content-addressed evaluation cache: keys, intact and torn entries, concurrent writers, and two demo
runs in a row through the real evaluator."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from harness.infra.eval_cache import EvalCache, cache_key, normalize_patch
from tests.helpers import run_evals

ROW = {"instance_id": "o__r-1", "repo": "o/r", "version": "1.0", "test_patch": "tp", "FAIL_TO_PASS": "[]"}


def _logs(folder: Path, verdict: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps({"o__r-1": {"resolved": verdict}}))
    (folder / "test_output.txt").write_text("PASSED t\n")
    return folder


def test_the_key_follows_patch_image_evaluator_and_spec():
    base = cache_key(ROW, "diff\n", "sha256:img", "4.1.0")
    assert cache_key(ROW, "diff\r\n\n\n", "sha256:img", "4.1.0") == base  # normalized patch
    assert normalize_patch("a\r\nb") == "a\nb\n"
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
