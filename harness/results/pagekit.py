"""Shared parts of the per-case and per-instance HTML pages: where pages live, escaping, diffs, folding.

Pages are self-contained files under runs/<run_id>/pages/ (inline CSS, a few lines of inline JS, nothing
from the network). Every piece of text from a record, a trajectory or a log goes through `esc`: secrets
are redacted (harness.infra.secrets, as for every file the harness writes) and then HTML-escaped, so model
output can never inject markup. Rendering is linear in the size of the text: each string is escaped once
and pages are joined from lists.
"""

from __future__ import annotations

import re
from html import escape
from urllib.parse import quote

from harness.infra.secrets import redact_text

PAGES_DIR = "pages"
FOLD_LINES = 24
"""Outputs longer than this many lines (or FOLD_CHARS characters) are folded: head and tail shown."""
FOLD_CHARS = 2400
MAX_TEXT_CHARS = 200_000
"""Longer texts keep their first and last parts on the page; the raw file has everything."""
PAGE_BUDGET_CHARS = 20_000_000
"""Past this much trajectory text on one page, outputs show their first and last lines only."""
PAGE_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:20px;color:#222;max-width:1400px}h1{font-size:20px;margin:0 0 4px}
h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd}h3{font-size:14px;margin:14px 0 4px}
.sub,.note{color:#666;font-size:12px}a{color:#0b5cad}nav a{margin-right:10px}
table{border-collapse:collapse;font-size:13px}th,td{padding:3px 7px;border:1px solid #ddd;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right}pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;
font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f7f7f7;padding:6px 8px;border-radius:4px}
.o-resolved{color:#1a7f37}.o-unresolved{color:#9a6700}.o-error{color:#cf222e}.o-skipped{color:#777}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;background:#eee}
.b-resolved{background:#d3f0d8}.b-unresolved{background:#fbe7b5}.b-error{background:#f8d7da}.b-skipped{background:#e5e5e5}
.diff .a{background:#e6ffec;color:#116329}.diff .d{background:#ffebe9;color:#82071e}.diff .h{color:#6f42c1}
.diff .f{font-weight:bold;color:#333}.diff span{display:block}.step{border:1px solid #e3e3e3;border-radius:6px;
margin:10px 0;padding:6px 10px}.step h3{margin:2px 0 6px;font-size:13px}.step .meta{color:#555;font-weight:normal}
.thought{white-space:pre-wrap;margin:4px 0}pre.cmd{background:#eef4ff;border-left:3px solid #4c78a8}
.rc{font-size:12px;padding:0 6px;border-radius:8px}.rc0{background:#d3f0d8}.rcx{background:#f8d7da}
.steps-index a{display:inline-block;min-width:22px;text-align:center;margin:1px;font-size:11px;
text-decoration:none;border:1px solid #ddd;border-radius:3px}.steps-index a.bad{background:#f8d7da}
.side{display:grid;grid-auto-flow:column;grid-auto-columns:minmax(420px,1fr);gap:12px;overflow-x:auto}
.side>div{border:1px solid #e3e3e3;border-radius:6px;padding:6px 10px;min-width:0}
code{word-break:break-word}.t-ok{color:#1a7f37}.t-bad{color:#cf222e}details>summary{cursor:pointer;color:#0b5cad;font-size:12px}
"""


def esc(value: object) -> str:
    """Redacted, then HTML-escaped (quotes too): safe in text and in attribute values."""
    return escape(redact_text(str(value)), quote=True)


def href(path: str) -> str:
    """A relative link, percent-encoded and escaped (never a javascript: or absolute URL from data)."""
    return escape(quote(path.lstrip("/")), quote=True)


def case_page(case_id: str) -> str:
    """Path of a case page, relative to the run folder."""
    return f"{PAGES_DIR}/case-{case_id}.html"


def instance_page(instance_id: str) -> str:
    """Path of the side-by-side page of one instance (every model and attempt), relative to the run folder."""
    return f"{PAGES_DIR}/instance-{instance_id}.html"


def repo_page(repo: str) -> str:
    """Path of the page of one repository's cases (the heatmap cells link here), relative to the run folder."""
    return f"{PAGES_DIR}/repo-{re.sub(r'[^A-Za-z0-9_.-]+', '__', repo)}.html"


def from_page(path: str) -> str:
    """A run-folder-relative path as seen from a page in pages/."""
    return href(f"../{path}")


def head(title: str, *, script: str = "") -> str:
    from harness.results.html import JS_ERRORS

    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"{JS_ERRORS}<style>{PAGE_CSS}</style>{script}</head><body>"
    )


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> tuple[str, int]:
    """(text with its middle left out when longer than `limit`, characters left out)."""
    if len(text) <= limit:
        return text, 0
    keep_head = limit * 3 // 4
    keep_tail = limit - keep_head
    left_out = len(text) - limit
    return (
        f"{text[:keep_head]}\n\u2026 [{left_out:,} characters left out] \u2026\n{text[-keep_tail:]}",
        left_out,
    )


def folded(text: str, *, label: str = "output", cls: str = "", whole: bool = True) -> str:
    """Short text as is; long text as its first and last lines with the whole in a <details> to unfold
    (`whole=False`: the preview only, the page's budget is spent; the raw file has it)."""
    text, left_out = clip(text)
    attr = f' class="{cls}"' if cls else ""
    lines = text.split("\n")
    if len(lines) <= FOLD_LINES and len(text) <= FOLD_CHARS:
        return f"<pre{attr}>{esc(text)}</pre>"
    head_lines, tail_lines = lines[:10], lines[-4:] if len(lines) > 14 else []
    hidden = len(lines) - len(head_lines) - len(tail_lines)
    preview = "\n".join(head_lines)[:FOLD_CHARS]
    middle = f"\n\u2026 {hidden:,} more lines \u2026\n" if hidden > 0 else "\n\u2026\n"
    size = f"{len(lines):,} lines, {len(text) / 1000:,.1f} kB" + (" (clipped)" if left_out else "")
    shown = f"<pre{attr}>{esc(preview)}{middle}{esc(chr(10).join(tail_lines)[-FOLD_CHARS:])}</pre>"
    if not whole:
        return f'{shown}<p class="note">whole {esc(label)} ({size}) in the raw file: this page is already large</p>'
    return (
        f"{shown}<details><summary>whole {esc(label)}: {size}</summary><pre{attr}>{esc(text)}</pre></details>"
    )


def diff_html(patch: str) -> str:
    """A unified diff with added, removed, hunk and file lines coloured; "no patch" when empty."""
    if not patch.strip():
        return '<p class="note">No patch was submitted.</p>'
    text, left_out = clip(patch)
    out = []
    for line in text.split("\n"):
        if line.startswith(("diff --git", "+++ ", "--- ", "index ")):
            cls = "f"
        elif line.startswith("@@"):
            cls = "h"
        elif line.startswith("+"):
            cls = "a"
        elif line.startswith("-"):
            cls = "d"
        else:
            cls = ""
        out.append(
            f'<span class="{cls}">{esc(line) or " "}</span>' if cls else f"<span>{esc(line) or ' '}</span>"
        )
    note = f'<p class="note">{left_out:,} characters left out; see the raw patch.</p>' if left_out else ""
    return f'<pre class="diff">{"".join(out)}</pre>{note}'


def badge(outcome: str, text: str | None = None) -> str:
    return f'<span class="badge b-{esc(outcome)}">{esc(text or outcome)}</span>'


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value < 60:
        return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def money(value: float | None) -> str:
    """Unknown stays "unknown" (never $0)."""
    if value is None:
        return "unknown"
    return f"${value:,.4f}" if value < 1 else f"${value:,.2f}"
