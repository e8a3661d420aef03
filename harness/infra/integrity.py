"""Grading integrity: flags on an evaluated patch that a reader of the leaderboard should see.

- `edits-tests`: the patch touches a file the instance's test patch touches, or a test path by
  convention (tests/ or test/ folders, test_*.py, *_test.py).
- `edits-test-config`: the patch touches test or CI configuration (conftest.py, pytest.ini, tox.ini,
  noxfile.py, .github/, or the pytest/tox sections of setup.cfg and pyproject.toml).
- `forged-test-output`: the test command exited non-zero, yet its parsed output shows no failing test.
  A patch can make the runner print `PASSED` lines (swebench issue #601); swebench 5 checks the test
  command's exit status for this (PR #620), 4.1.0 does not, so the harness adds that check: the eval
  script records the test command's exit status under a per-evaluation nonce the patch cannot know.

Flags never change a verdict unless the run asks for `--strict-integrity`.
"""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any


class IntegrityFlag(StrEnum):
    EDITS_TESTS = "edits-tests"
    EDITS_TEST_CONFIG = "edits-test-config"
    FORGED_TEST_OUTPUT = "forged-test-output"


_DIFF_GIT = re.compile(r"^diff --git a/(\S+) b/(\S+)", re.M)
_PLUS_MINUS = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(\S+)", re.M)
_CONFIG_FILES = {"conftest.py", "pytest.ini", "tox.ini", "noxfile.py", ".coveragerc"}
_SECTIONED = {"setup.cfg", "pyproject.toml"}
_TEST_SECTION = re.compile(r"\[(tool:pytest|pytest|tool\.pytest[\w.]*|tox[\w:.-]*|tool\.tox[\w.]*)\]")
FAILING_STATUSES = {"FAILED", "ERROR"}
EXIT_PREFIX = "harness-test-exit-"


def patch_files(patch: str) -> list[str]:
    """Paths a unified or git diff touches (both sides of renames; /dev/null left out)."""
    found: list[str] = []
    for a, b in _DIFF_GIT.findall(patch):
        found += [a, b]
    found += _PLUS_MINUS.findall(patch)
    return sorted({p for p in found if p != "/dev/null"})


def _file_sections(patch: str) -> dict[str, str]:
    """Each touched file's part of the diff (for section checks of setup.cfg / pyproject.toml)."""
    parts = re.split(r"(?m)^(?=diff --git )", patch)
    out: dict[str, str] = {}
    for part in parts:
        names = _DIFF_GIT.findall(part) or [(p, p) for p in _PLUS_MINUS.findall(part)[:1]]
        if names:
            out[names[0][1]] = part
    return out


def is_test_path(path: str) -> bool:
    p = PurePosixPath(path)
    if any(part in ("tests", "test", "testing") for part in p.parts[:-1]):
        return True
    return p.suffix == ".py" and (p.name.startswith("test_") or p.stem.endswith("_test"))


def patch_flags(patch: str, test_patch: str) -> list[IntegrityFlag]:
    """The static flags of a patch against its instance's test patch."""
    files = patch_files(patch)
    test_files = set(patch_files(test_patch or ""))
    flags: list[IntegrityFlag] = []
    if any(f in test_files or is_test_path(f) for f in files):
        flags.append(IntegrityFlag.EDITS_TESTS)
    sections = _file_sections(patch)
    config = [
        f
        for f in files
        if PurePosixPath(f).name in _CONFIG_FILES
        or f.startswith(".github/")
        or (PurePosixPath(f).name in _SECTIONED and _TEST_SECTION.search(sections.get(f, "")))
    ]
    if config:
        flags.append(IntegrityFlag.EDITS_TEST_CONFIG)
    return flags


def new_nonce() -> str:
    return secrets.token_hex(8)


def add_exit_status_probe(eval_script_list: list[str], nonce: str, start_marker: str) -> list[str]:
    """The eval script with the test command's exit status recorded after its output region.

    swebench's python eval script runs `: '<start marker>'`, the test command, `: '<end marker>'`; the
    status is kept in a variable right after the test command and echoed after the end marker, so the
    parsed region is unchanged.
    """
    commands = list(eval_script_list)
    marker = f": '{start_marker}'"
    if marker not in commands or commands.index(marker) + 2 >= len(commands):
        return commands
    test_at = commands.index(marker) + 1
    commands.insert(test_at + 1, "HARNESS_TEST_EXIT=$?")
    commands.insert(test_at + 3, f'echo "{EXIT_PREFIX}{nonce}=$HARNESS_TEST_EXIT"')
    return commands


def test_exit_status(test_output: str, nonce: str) -> int | None:
    """The test command's exit status recorded under `nonce` (the last occurrence), or None."""
    found = re.findall(rf"^{EXIT_PREFIX}{re.escape(nonce)}=(\d+)\s*$", test_output, re.M)
    return int(found[-1]) if found else None


def output_flags(exit_status: int | None, status_map: dict[str, Any]) -> list[IntegrityFlag]:
    """`forged-test-output` when the test command failed but no parsed test failed."""
    if exit_status is None or exit_status == 0:
        return []
    if any(str(s) in FAILING_STATUSES for s in status_map.values()):
        return []
    return [IntegrityFlag.FORGED_TEST_OUTPUT]
