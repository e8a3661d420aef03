"""The bundled fixture instances are deterministic, well-formed SWE-bench rows whose patches apply."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.demo.fixtures import FIXTURE_IDS, FIXTURES, fixture_rows

CLASSIC = {
    "repo",
    "instance_id",
    "base_commit",
    "patch",
    "test_patch",
    "problem_statement",
    "hints_text",
    "created_at",
    "version",
    "FAIL_TO_PASS",
    "PASS_TO_PASS",
    "environment_setup_commit",
}


def test_fixture_repos_are_deterministic(tmp_path):
    first = fixture_rows(tmp_path / "a")
    second = fixture_rows(tmp_path / "b")
    assert first == second
    assert sorted(first) == sorted(FIXTURE_IDS)
    assert len(FIXTURES) >= 3


def test_fixture_rows_have_the_classic_fields(fixture_rows):
    for row in fixture_rows.values():
        assert set(row) == CLASSIC
        assert len(row["base_commit"]) == 40
        assert row["patch"].startswith("diff --git ")
        assert row["test_patch"].startswith("diff --git ")
        assert json.loads(row["FAIL_TO_PASS"]) and json.loads(row["PASS_TO_PASS"])


def test_gold_and_test_patches_apply_to_the_base_commit(tmp_path):
    rows = fixture_rows(tmp_path)
    for instance_id, row in rows.items():
        repo = tmp_path / instance_id
        for key in ("patch", "test_patch"):
            done = subprocess.run(
                ["git", "apply", "--check", "-"], cwd=repo, input=row[key], text=True, capture_output=True
            )
            assert done.returncode == 0, (instance_id, key, done.stderr)


def test_gold_patch_fixes_the_fail_to_pass_tests_on_the_host(tmp_path):
    """Sanity check of the fixtures themselves (the official evaluator check runs in containers elsewhere)."""
    rows = fixture_rows(tmp_path)
    for instance_id, row in rows.items():
        repo = tmp_path / instance_id
        subprocess.run(["git", "apply", "-"], cwd=repo, input=row["test_patch"], text=True, check=True)
        f2p = json.loads(row["FAIL_TO_PASS"])
        before = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *f2p],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert before.returncode != 0, instance_id
        subprocess.run(["git", "apply", "-"], cwd=repo, input=row["patch"], text=True, check=True)
        after = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *f2p],
            cwd=repo,
            capture_output=True,
            text=True,
        )
        assert after.returncode == 0, (instance_id, after.stdout[-500:])
