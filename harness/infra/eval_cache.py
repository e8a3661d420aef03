"""Content-addressed evaluation cache: the same patch on the same instance image is graded once per machine.

Key: instance id, sha256 of the patch exactly as the evaluator receives it, the instance image's digest, the
evaluator's version (swebench and the harness's exit-status probe) and a hash of the eval spec (test
command, test patch, FAIL_TO_PASS, PASS_TO_PASS). The patch is not normalized: swebench applies the bytes it
is given, and two diffs that differ only in line endings or a final newline can apply differently (a diff
of a CRLF file with its CRs stripped no longer applies; one without its final newline is "corrupt" to
`git apply` and goes to `patch --fuzz`), so they must not share a verdict. Value: the evaluator's files
(report.json, test_output.txt, run_instance.log) plus meta.json naming the run and case that produced them and
a sha256 of each file.

One directory per key under the cache root (default `<runs dir>/../.harness-cache/eval`,
`HARNESS_EVAL_CACHE` moves it), shared by every worker and run on the machine. An entry is written in a
temporary directory and renamed into place, so readers see a whole entry or none; an entry whose files
do not match meta.json (torn, edited, half-deleted) is ignored and graded again, never trusted. Only
model outcomes are stored: infrastructure errors and timeouts are always re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROBE_VERSION = "exit-status-probe-1"
"""Changes whenever the harness changes what it adds to the eval script (harness.infra.integrity)."""
KEY_VERSION = 2
"""Version 1 hashed the patch with CRLF and trailing newlines normalized: its entries must not answer for a
patch whose exact bytes hash to the same value (a different diff graded under that key)."""
FILES = ("report.json", "test_output.txt", "run_instance.log")


def spec_hash(row: dict) -> str:
    """What decides the verdict besides the patch: the repo's test command and the instance's tests."""
    from swebench.harness.constants import MAP_REPO_VERSION_TO_SPECS

    from harness.demo.fixtures import register_fixture_repos

    register_fixture_repos()  # the fixture repos' specs, as the evaluator sees them
    specs = MAP_REPO_VERSION_TO_SPECS.get(row["repo"], {}).get(row.get("version"), {})
    material = [
        row["repo"],
        row.get("version"),
        specs.get("test_cmd"),
        specs.get("eval_commands"),
        specs.get("install"),
        row.get("test_patch", ""),
        row.get("FAIL_TO_PASS"),
        row.get("PASS_TO_PASS"),
    ]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(
    row: dict, patch: str, image_digest: str, evaluator_version: str, spec: str | None = None
) -> str:
    """The entry's key; `spec` is `spec_hash(row)` when the caller has it already (computed here otherwise)."""
    material = {
        "instance_id": row["instance_id"],
        "key_version": KEY_VERSION,
        "patch_sha256": hashlib.sha256(patch.encode()).hexdigest(),  # as CaseRecord.patch_sha256
        "image_digest": image_digest,
        "evaluator": f"{evaluator_version}+{PROBE_VERSION}",
        "spec": spec or spec_hash(row),
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def default_root(runs_dir: Path) -> Path:
    env = os.environ.get("HARNESS_EVAL_CACHE")
    return Path(env) if env else runs_dir.resolve().parent / ".harness-cache" / "eval"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class CacheHit:
    meta: dict[str, Any]
    """run_id, case_id, created, test_exit_status of the evaluation that produced the entry."""


class EvalCache:
    def __init__(self, root: Path):
        self.root = root

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def _intact(self, key: str) -> dict[str, Any] | None:
        """The entry's meta when every file it lists is there with the listed sha256, else None."""
        entry = self._entry(key)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            files = meta["files"]
            if not isinstance(files, dict) or "report.json" not in files or meta.get("key") != key:
                return None
            for name, digest in files.items():
                if name not in FILES or _sha(entry / name) != digest:
                    return None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta

    def lookup(self, key: str, log_dir: Path) -> CacheHit | None:
        """Copy a whole, intact entry's files into `log_dir` and return its meta; None for no (good) entry."""
        meta = self._intact(key)
        if meta is None:
            return None
        log_dir.mkdir(parents=True, exist_ok=True)
        for name in meta["files"]:
            shutil.copyfile(self._entry(key) / name, log_dir / name)
        return CacheHit(meta)

    def store(self, key: str, log_dir: Path, meta: dict[str, Any]) -> bool:
        """Keep an evaluation's files under `key`; False when it is not storable or already there."""
        present = [n for n in FILES if (log_dir / n).is_file()]
        if "report.json" not in present:
            return False
        final = self._entry(key)
        if final.exists():
            if self._intact(key) is not None:
                return False  # a good entry is there already
            aside = final.with_name(f"{final.name}.torn-{time.time_ns()}")
            try:
                os.rename(final, aside)  # a torn entry is never trusted: move it out of the way
            except OSError:
                return False
            shutil.rmtree(aside, ignore_errors=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=final.parent))
        try:
            for name in present:
                shutil.copyfile(log_dir / name, tmp / name)
            meta = {**meta, "key": key, "created": time.time(), "files": {n: _sha(tmp / n) for n in present}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
            os.rename(tmp, final)  # atomic; fails if another writer got there first
            return True
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            return False
