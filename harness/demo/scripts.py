"""Scripts the scripted LLM server plays for the bundled fixture instances.

Each script is what a model would say, one bash command per turn, in mini-swe-agent's SWE-bench
protocol (edit, write the diff to patch.txt, submit with COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT).
Two scripts really fix their bug; the ledger script submits a plausible but wrong fix, so the
demo leaderboard shows scripted at 2/3 and the evaluator, not the script, decides.
"""

from __future__ import annotations

from harness.demo.llm_server import Script

SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt"

_CALC_EDIT = """python3 - <<'PY'
from pathlib import Path
path = Path("calc/stats.py")
text = path.read_text()
old = "    return sum(values) / len(values)"
new = '    if not values:\\n        raise ValueError("mean() of empty sequence")\\n' + old
path.write_text(text.replace(old, new, 1))
PY"""

FIXTURE_SCRIPTS: tuple[Script, ...] = (
    Script(
        match="mean() of an empty list raises ZeroDivisionError",
        thought="Read the function, guard the empty case, check, and submit the diff.",
        steps=[
            "cat calc/stats.py",
            _CALC_EDIT,
            "python3 -c 'from calc.stats import mean\ntry:\n    mean([])\nexcept ValueError as e:\n    print(\"ok\", e)'",
            "git diff -- calc/stats.py > patch.txt",
            SUBMIT,
        ],
    ),
    Script(
        match="slugify keeps upper-case letters",
        thought="Lower-case the joined slug.",
        steps=[
            "grep -n 'join' textkit/slug.py",
            'sed -i \'s/return "-".join(words)$/return "-".join(words).lower()/\' textkit/slug.py',
            "python3 -c 'from textkit.slug import slugify; print(slugify(\"Hello World\"))'",
            "git diff -- textkit/slug.py > patch.txt",
            SUBMIT,
        ],
    ),
    Script(
        match="paginate() skips the first page",
        thought="Clamp the page number (a wrong fix: pages stay off by one).",
        steps=[
            "cat ledger/pages.py",
            "sed -i 's/start = page \\* per_page/start = max(page, 0) * per_page/' ledger/pages.py",
            "git diff -- ledger/pages.py > patch.txt",
            SUBMIT,
        ],
    ),
)
