"""Run-wide state of one process (controller or xdist worker): config, run folder, runtime, rows, scripted server.

Everything expensive (container runtime detection, dataset rows, the scripted LLM server) is made on
first use, so pytest collection stays cheap and touches neither containers nor the network.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import __version__
from harness.config import FIXTURES_SLICE, HarnessConfig
from harness.demo.fixtures import FIXTURE_IDS
from harness.errors import HarnessError
from harness.infra.containers import Runtime, detect_runtime
from harness.infra.eval_cache import EvalCache, default_root
from harness.results.records import RunPaths, write_text_atomic

if TYPE_CHECKING:
    from harness.run.grid import Case


def package_versions() -> dict[str, str]:
    """Versions of what produced a record, read from package metadata (no imports: litellm is slow)."""
    found = {"harness": __version__}
    for dist in ("mini-swe-agent", "swebench", "litellm", "pytest", "pytest-xdist", "sweagent", "swe-rex"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "not installed"
    return found


def config_hash(config_dir: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(config_dir.glob("*")):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + digest.hexdigest()


def open_ledger(cfg: HarnessConfig, runs_dir: Path, run_id: str):
    """The budget ledger shared by every worker and every run under `runs_dir` (or, with HARNESS_LEDGER_URL,
    by every machine), with the configured limits."""
    from harness.config.catalog import PROVIDER_DEFAULTS
    from harness.infra.budget import Limits, ledger_for

    quotas = {}
    for name in {*PROVIDER_DEFAULTS, *cfg.catalog.providers}:
        settings = cfg.catalog.providers.get(name) or PROVIDER_DEFAULTS.get(name)
        if settings is not None and settings.calls_per_day is not None:
            quotas[name] = settings.calls_per_day
    budgets = cfg.agent.budgets
    limits = Limits(calls_per_day=quotas, usd_per_run=budgets.usd_per_run, usd_per_case=budgets.usd_per_case)
    return ledger_for(runs_dir / ".budget-ledger.sqlite", run_id, limits)


# litellm otherwise fetches its price map from GitHub at import (retrying for seconds when offline);
# our prices come from config/model_catalog.yaml, so its bundled copy is enough.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


class RunContext:
    def __init__(
        self,
        cfg: HarnessConfig,
        run_id: str,
        runs_dir: Path,
        *,
        namespace: str = "swebench",
        eval_workers: int = 4,
        dataset_source: str = "auto",
        active_grids: frozenset[str] = frozenset(),
        backend: str = "mini",
        strict_integrity: bool = False,
        include_quarantined: bool = False,
        eval_cache: bool = True,
        eval_backend: str = "docker",
        agent_env: str = "docker",
        eval_server: Path | None = None,
        agent_server: Path | None = None,
        runtime: Runtime | None = None,
    ):
        self.cfg = cfg
        self.run_id = run_id
        self.paths = RunPaths(runs_dir, run_id)
        self.namespace = namespace
        self.eval_workers = eval_workers
        self.dataset_source = dataset_source
        self.active_grids = active_grids
        self.backend = backend
        self.strict_integrity = strict_integrity
        self.include_quarantined = include_quarantined
        self.eval_cache = EvalCache(default_root(runs_dir)) if eval_cache else None
        """The machine's content-addressed evaluation cache; None under --no-eval-cache."""
        self._digests: dict[str, str | None] = {}
        self._spec_hashes: dict[str, str] = {}
        self.spec_hash_wait_s = 0.0
        """Seconds this process's spec_hash requests waited for the evaluation server's load (grading takes the
        change over a case: its share of the run's start-up)."""
        self.eval_backend = eval_backend
        """docker | modal (--eval-backend): where the official evaluator runs."""
        self.agent_env = agent_env
        """docker | modal (--agent-env): where the agent's instance container runs."""
        self.eval_server = eval_server
        """The run's evaluation server's socket (harness.infra.eval_server); None: evaluate in this process."""
        self.agent_server = agent_server
        """The run's agent server's socket (harness.agents.server); None: mini-swe-agent runs in this process."""
        self.versions = package_versions()
        self.config_hash = config_hash(cfg.dir)
        self._runtime: Runtime | None = runtime
        """Detected on first use, unless given (the controller's, with its environment exported)."""
        self._rows: dict[str, dict[str, dict]] = {}
        self.dataset_info: dict[str, dict[str, Any]] = {}
        self._server: Any = None
        self._ledger: Any = None
        self._availability: dict[str, dict[str, str]] | None = None
        self._fixture_images_ready = False
        self._tmp = tempfile.TemporaryDirectory(prefix="harness-")

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            self._runtime = detect_runtime()
            self._runtime.export_env()
        return self._runtime

    def image_digest(self, image: str) -> str | None:
        """The local image's id (content digest), from the run's image ids (RunPaths.image_ids: checked when
        the run started) or else asked once per process; None when it is not there."""
        if image not in self._digests:
            from harness.infra.images import image_ids, read_image_ids

            digest = read_image_ids(self.paths.image_ids).get(image) or image_ids(self.runtime, [image]).get(
                image
            )
            if not digest:
                return None  # not pulled yet: ask again next time
            self._digests[image] = digest
        return self._digests[image]

    def spec_hash(self, row: dict) -> str | None:
        """The instance's evaluation spec hash (harness.infra.eval_cache.spec_hash), once per process: by the
        evaluation server when there is one, which has swebench loaded (a worker would load it for this alone:
        ~150 MB and 1.5 s of CPU each). None when the server cannot answer."""
        instance_id = row["instance_id"]
        if instance_id not in self._spec_hashes:
            if self.eval_server is not None:
                from harness.infra.eval_server import spec_hash_remote

                found, waited = spec_hash_remote(self.eval_server, row)
                self.spec_hash_wait_s += waited
            else:
                from harness.infra.eval_cache import spec_hash

                found = spec_hash(row)
            if found is None:
                return None
            self._spec_hashes[instance_id] = found
        return self._spec_hashes[instance_id]

    def use_rows(self, split: str, rows: dict[str, dict]) -> None:
        """Instance rows given by the caller for `split` (calibrating an instance set built elsewhere)."""
        if split == FIXTURES_SLICE:
            self.dataset_info[split] = {"source": "rows given by the caller", "detail": "RunContext.use_rows"}
        self._rows[split] = rows

    def row(self, split: str, instance_id: str) -> dict:
        if split not in self._rows:
            self._rows[split] = self._load_rows(split)
        try:
            return self._rows[split][instance_id]
        except KeyError:
            raise HarnessError(f"instance {instance_id} is not in split {split}") from None

    def _load_rows(self, split: str) -> dict[str, dict]:
        if split == FIXTURES_SLICE:
            self.dataset_info[split] = {"source": "bundled fixtures", "detail": "harness/demo/fixtures.py"}
            return self._read_fixture_rows() or self._write_fixture_repos()
        from harness.infra.dataset import load_lock, load_split

        lock = load_lock(self.cfg.lock_path)
        loaded = load_split(lock, split, self.cfg.root, source=self.dataset_source)  # type: ignore[arg-type]
        self.dataset_info[split] = {
            "source": loaded.source,
            "detail": loaded.detail,
            "hf_repo": lock.hf_repo,
            "revision": lock.revision,
            "revision_verified": bool(lock.revision_verified),
            "fingerprint": lock.splits[split].fingerprint,
        }
        return loaded.rows

    @property
    def _fixture_repos(self) -> Path:
        return Path(self._tmp.name) / "fixture-repos"

    def _write_fixture_repos(self) -> dict[str, dict]:
        """Write the fixture repos (git init, commit, diff: ~0.1 CPU-s) and return their rows."""
        from harness.demo.fixtures import fixture_rows

        return fixture_rows(self._fixture_repos)

    def _read_fixture_rows(self) -> dict[str, dict] | None:
        """The rows another process of this run wrote (RunPaths.fixture_rows), if they are there and whole."""
        try:
            rows = json.loads(self.paths.fixture_rows.read_text())
        except (OSError, ValueError):
            return None
        return rows if isinstance(rows, dict) and sorted(rows) == sorted(FIXTURE_IDS) else None

    def ensure_images_for(self, case: Case) -> None:
        """The images `case`'s agent and evaluation need, where the harness builds them: the fixture images
        (an `empty` case runs nothing in them). Pulled images are checked when the run starts."""
        if case.needs_fixture_images:
            self.ensure_fixture_images()

    def ensure_fixture_images(self) -> None:
        """Build (or reuse) the fixture images once per run, under a lock shared by the run's workers.

        The first process to get the lock (the controller, which checks while xdist starts the workers:
        EvalRun.start) checks (and if needed builds) the images and leaves a marker and the rows
        (RunPaths.fixture_rows); the others see them and go on, instead of asking the runtime about every image
        one after another (about 2 s each on a busy machine) and writing the fixture repos with git. The
        controller removes both when the run (or its resume) starts.

        The images are built from the repos this process wrote (the same rows: the repos are deterministic).
        """
        if self._fixture_images_ready:
            return
        import fcntl

        from harness.infra.containers import build_fixture_images, instance_image_name
        from harness.infra.images import add_image_ids, image_ids

        self.paths.slots.mkdir(parents=True, exist_ok=True)
        checked = self.paths.fixture_images_checked
        with open(self.paths.slots / "fixture-images.lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.row(FIXTURES_SLICE, FIXTURE_IDS[0])  # the run's rows file if there (else from git, here)
            rows = self._rows[FIXTURES_SLICE]
            wanted = json.dumps(sorted((i, r["base_commit"]) for i, r in rows.items()))
            if not checked.is_file() or checked.read_text() != wanted:  # the first one checks for all
                if not self._fixture_repos.is_dir():  # images are built from repos (deterministic: same rows)
                    self._write_fixture_repos()
                build_fixture_images(self.runtime, rows, self._fixture_repos)
                images = [instance_image_name(i, "localhost") for i in sorted(rows)]
                add_image_ids(self.paths.image_ids, image_ids(self.runtime, images))
                checked.write_text(wanted)
            if self._read_fixture_rows() != rows:
                write_text_atomic(self.paths.fixture_rows, json.dumps(rows))
        self._fixture_images_ready = True

    @property
    def mini_config(self) -> Path:
        """agent.mini_config as a file (checked when the run was configured)."""
        from harness.agents.mini import mini_config_path

        return mini_config_path(self.cfg.agent.agent.mini_config, self.cfg.dir)

    @property
    def ledger(self):
        """The cross-process budget ledger (runs/.budget-ledger.sqlite: daily quotas span runs)."""
        if self._ledger is None:
            self._ledger = open_ledger(self.cfg, self.paths.runs_dir, self.run_id)
        return self._ledger

    @property
    def availability(self) -> dict[str, dict[str, str]]:
        """Model availability found by the controller's pre-flight (runs/<id>/availability.json), if any."""
        if self._availability is None:
            path = self.paths.root / "availability.json"
            self._availability = json.loads(path.read_text()) if path.is_file() else {}
        return self._availability

    def scripted_api_base(self) -> str:
        """The scripted OpenAI-compatible server of this process, started on 127.0.0.1 on first use."""
        if self._server is None:
            from harness.demo.llm_server import ScriptedLLMServer
            from harness.demo.scripts import FIXTURE_SCRIPTS

            self._server = ScriptedLLMServer(list(FIXTURE_SCRIPTS)).start()
        return self._server.url

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._tmp.cleanup()


def check_fixture_images(cfg: HarnessConfig, run_id: str, runs_dir: Path, runtime: Runtime) -> None:
    """The fixture images and rows of a run, checked by its controller while xdist starts the workers (EvalRun.start),
    so that their first cases find them checked instead of waiting on the first worker's check (~0.3-0.5 s on 2
    busy cores) and writing the fixture repos each. A failure is left to the workers: their cases check again
    and report it."""
    ctx = RunContext(cfg, run_id, runs_dir, eval_cache=False, runtime=runtime)
    try:
        ctx.ensure_fixture_images()
    except Exception:  # noqa: BLE001, S110 - reported by the cases that need the images
        pass
    finally:
        ctx.close()


def warm_llm_imports() -> None:
    """Import litellm and mini-swe-agent's model (about 5 s) in the background while the process does
    other work, instead of on the first LLM case; an import that is still running blocks only its user."""
    import threading

    def warm() -> None:
        import contextlib
        import gc

        with contextlib.suppress(Exception):
            import harness.agents.llm  # noqa: F401
        # litellm leaves ~400k objects that live as long as the process: keep them out of the cyclic GC,
        # whose full passes (pytest runs two at session end) otherwise walk them every time (~0.25 s each).
        gc.freeze()

    threading.Thread(target=warm, name="harness-warm-imports", daemon=True).start()
