"""Bundled fixture instances: three tiny Python repos written by the project, in SWE-bench format.

Each fixture is a repo at a base commit (made deterministically: fixed author and dates), a bug
described in a problem statement, a gold patch, a test patch and the FAIL_TO_PASS / PASS_TO_PASS
test ids. `build_fixture_repo` writes the repo with real git and returns the SWE-bench row, so the
same row drives the agent, the instance image and the official evaluator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

FIXTURE_VERSION = "1.0"
GIT_DATE = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class FixtureSpec:
    instance_id: str
    repo: str
    problem_statement: str
    base_files: dict[str, str]
    gold_files: dict[str, str]
    test_files: dict[str, str]
    fail_to_pass: list[str]
    pass_to_pass: list[str]
    hints_text: str = ""
    created_at: str = "2024-01-01T00:00:00Z"
    extra: dict[str, str] = field(default_factory=dict)


_PYTEST_INI = "[pytest]\npythonpath = .\n"

_STATS_BASE = '''"""Small statistics helpers."""


def mean(values):
    """Arithmetic mean of a non-empty sequence."""
    return sum(values) / len(values)


def median(values):
    """Median of a non-empty sequence."""
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2
'''

_STATS_TESTS = """from calc.stats import mean, median


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5


def test_median_odd():
    assert median([3, 1, 2]) == 2


def test_median_even():
    assert median([4, 1, 3, 2]) == 2.5
"""

_SLUG_BASE = '''"""Text helpers."""

import re


def slugify(title):
    """Turn a title into a URL slug: lowercase words joined by hyphens, punctuation dropped."""
    words = re.findall(r"[A-Za-z0-9]+", title)
    return "-".join(words)
'''

_SLUG_TESTS = """from textkit.slug import slugify


def test_slugify_joins_words():
    assert "-" in slugify("two words")


def test_slugify_drops_punctuation():
    assert "!" not in slugify("hello, world!")
"""

_PAGES_BASE = '''"""Pagination of ledger entries."""


def paginate(items, page, per_page):
    """Return the entries of 1-based page `page`, `per_page` entries a page."""
    items = list(items)
    start = page * per_page
    return items[start : start + per_page]


def page_count(items, per_page):
    """Number of pages needed for `items`."""
    n = len(list(items))
    return (n + per_page - 1) // per_page
'''

_PAGES_TESTS = """from ledger.pages import page_count, paginate


def test_page_count():
    assert page_count(range(10), 3) == 4


def test_paginate_past_end_is_empty():
    assert paginate(range(10), 9, 3) == []
"""

FIXTURES: tuple[FixtureSpec, ...] = (
    FixtureSpec(
        instance_id="fixtures__calc-1",
        repo="fixtures/calc",
        problem_statement=(
            "mean() of an empty list raises ZeroDivisionError\n\n"
            "`calc.stats.mean([])` fails with `ZeroDivisionError: division by zero`. It should raise\n"
            '`ValueError("mean() of empty sequence")` instead, like `statistics.mean` does.\n'
        ),
        base_files={
            "pytest.ini": _PYTEST_INI,
            "calc/__init__.py": "",
            "calc/stats.py": _STATS_BASE,
            "tests/test_stats.py": _STATS_TESTS,
        },
        gold_files={
            "calc/stats.py": _STATS_BASE.replace(
                "    return sum(values) / len(values)",
                '    if not values:\n        raise ValueError("mean() of empty sequence")\n'
                "    return sum(values) / len(values)",
            )
        },
        test_files={
            "tests/test_stats.py": _STATS_TESTS
            + """

def test_mean_empty_raises():
    import pytest

    with pytest.raises(ValueError, match="empty"):
        mean([])
"""
        },
        fail_to_pass=["tests/test_stats.py::test_mean_empty_raises"],
        pass_to_pass=[
            "tests/test_stats.py::test_mean",
            "tests/test_stats.py::test_median_even",
            "tests/test_stats.py::test_median_odd",
        ],
    ),
    FixtureSpec(
        instance_id="fixtures__textkit-2",
        repo="fixtures/textkit",
        problem_statement=(
            "slugify keeps upper-case letters\n\n"
            '`textkit.slug.slugify("Hello World")` returns `"Hello-World"`, but slugs must be lower case:\n'
            'the expected result is `"hello-world"`.\n'
        ),
        base_files={
            "pytest.ini": _PYTEST_INI,
            "textkit/__init__.py": "",
            "textkit/slug.py": _SLUG_BASE,
            "tests/test_slug.py": _SLUG_TESTS,
        },
        gold_files={
            "textkit/slug.py": _SLUG_BASE.replace('return "-".join(words)', 'return "-".join(words).lower()')
        },
        test_files={
            "tests/test_slug.py": _SLUG_TESTS
            + """

def test_slugify_lowercases():
    assert slugify("Hello World") == "hello-world"
"""
        },
        fail_to_pass=["tests/test_slug.py::test_slugify_lowercases"],
        pass_to_pass=[
            "tests/test_slug.py::test_slugify_drops_punctuation",
            "tests/test_slug.py::test_slugify_joins_words",
        ],
    ),
    FixtureSpec(
        instance_id="fixtures__ledger-3",
        repo="fixtures/ledger",
        problem_statement=(
            "paginate() skips the first page\n\n"
            "Pages are 1-based, but `ledger.pages.paginate(range(10), 1, 3)` returns `[3, 4, 5]`\n"
            "instead of `[0, 1, 2]`, and the last page `paginate(range(10), 4, 3)` is empty instead of `[9]`.\n"
        ),
        base_files={
            "pytest.ini": _PYTEST_INI,
            "ledger/__init__.py": "",
            "ledger/pages.py": _PAGES_BASE,
            "tests/test_pages.py": _PAGES_TESTS,
        },
        gold_files={
            "ledger/pages.py": _PAGES_BASE.replace("start = page * per_page", "start = (page - 1) * per_page")
        },
        test_files={
            "tests/test_pages.py": _PAGES_TESTS
            + """

def test_paginate_first_page():
    assert paginate(range(10), 1, 3) == [0, 1, 2]


def test_paginate_last_page():
    assert paginate(range(10), 4, 3) == [9]
"""
        },
        fail_to_pass=[
            "tests/test_pages.py::test_paginate_first_page",
            "tests/test_pages.py::test_paginate_last_page",
        ],
        pass_to_pass=[
            "tests/test_pages.py::test_page_count",
            "tests/test_pages.py::test_paginate_past_end_is_empty",
        ],
    ),
)

FIXTURE_IDS: tuple[str, ...] = tuple(f.instance_id for f in FIXTURES)


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "swebench-harness",
        "GIT_AUTHOR_EMAIL": "fixtures@swebench-harness.invalid",
        "GIT_COMMITTER_NAME": "swebench-harness",
        "GIT_COMMITTER_EMAIL": "fixtures@swebench-harness.invalid",
        "GIT_AUTHOR_DATE": GIT_DATE,
        "GIT_COMMITTER_DATE": GIT_DATE,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo),
    }
    out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return out.stdout


def _write(repo: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _diff_of(repo: Path, files: dict[str, str]) -> str:
    """The git diff that turns the base commit into base + `files`; the work tree is reset afterwards."""
    _write(repo, files)
    diff = _git(repo, "diff", "--no-color", "--no-ext-diff", "HEAD")
    _git(repo, "checkout", "--", ".")
    return diff


def build_fixture_repo(spec: FixtureSpec, dest: Path) -> dict:
    """Write the fixture's git repo at its base commit into `dest` and return its SWE-bench row."""
    dest.mkdir(parents=True, exist_ok=False)
    _git(dest, "init", "-q", "-b", "main")
    _write(dest, spec.base_files)
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", f"{spec.repo}: base")
    base_commit = _git(dest, "rev-parse", "HEAD").strip()
    return {
        "repo": spec.repo,
        "instance_id": spec.instance_id,
        "base_commit": base_commit,
        "patch": _diff_of(dest, spec.gold_files),
        "test_patch": _diff_of(dest, spec.test_files),
        "problem_statement": spec.problem_statement,
        "hints_text": spec.hints_text,
        "created_at": spec.created_at,
        "version": FIXTURE_VERSION,
        "FAIL_TO_PASS": json.dumps(spec.fail_to_pass),
        "PASS_TO_PASS": json.dumps(spec.pass_to_pass),
        "environment_setup_commit": base_commit,
    }


def fixture_rows(workdir: Path) -> dict[str, dict]:
    """Build every fixture repo under `workdir` (fresh) and return their rows by instance id."""
    rows = {}
    for spec in FIXTURES:
        dest = workdir / spec.instance_id
        if dest.exists():
            shutil.rmtree(dest)
        rows[spec.instance_id] = build_fixture_repo(spec, dest)
    return rows


def register_fixture_repos() -> None:
    """Tell swebench 4.1.0 how to test the fixture repos (spec, file extension, log parser).

    Kept minimal on purpose (python, test_cmd), as DESIGN.md notes: anything else makes the
    evaluator fetch from the network.
    """
    from swebench.harness import constants
    from swebench.harness.log_parsers import MAP_REPO_TO_PARSER
    from swebench.harness.log_parsers.python import parse_log_pytest

    for spec in FIXTURES:
        constants.MAP_REPO_VERSION_TO_SPECS.setdefault(
            spec.repo, {FIXTURE_VERSION: {"python": "3.11", "test_cmd": "pytest -rA -p no:cacheprovider"}}
        )
        constants.MAP_REPO_TO_EXT.setdefault(spec.repo, "py")
        MAP_REPO_TO_PARSER.setdefault(spec.repo, parse_log_pytest)
