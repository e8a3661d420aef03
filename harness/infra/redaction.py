"""The forms a secret takes in text, and a `Redactor` that finds and replaces every one of them.

docs/secrets.md is the catalogue (one test per form). A value of 6 characters or more is hidden as:

- raw: the value itself;
- json: inside a JSON string (``json.dumps`` escapes, ASCII and not, ``\\/``) and a JSON string in a JSON string;
- repr: inside a Python ``repr`` (what ``str(dict)`` of an error body shows: backslashes doubled, quotes escaped);
- url: percent-encoded (``quote``, ``quote_plus``; upper- and lower-case hex);
- base64: standard and URL-safe alphabets at each of the three byte alignments, so the base64 of *any* text
  that contains the value (HTTP Basic auth of ``user:key`` or ``key:``, a Bearer of the encoded key) is
  caught: the characters that depend only on the value's bytes are replaced, at most 2 characters of
  neighbouring text with them;
- part: any run of at least half of the value's characters (values of 16+ characters: a half is >= 8
  characters, e.g. a truncated ``sk-or-v1-0123…`` or the tail an error shows). Shorter values have no part
  form: 7 characters or fewer of a key are not worth mangling ordinary text for.

A value of 3 to 5 characters (vLLM's conventional ``EMPTY``) is hidden only where it stands alone: not
inside a longer word or number (``[A-Za-z0-9_]`` on neither side), so ``1234`` inside ``12345`` is kept. It
has no other form: its encodings are too short to tell apart from ordinary text. A value of 1 or 2
characters cannot be hidden at all without mangling every text; the run header says so (use a real key).

Every form is replaced by ``[REDACTED:<NAME>]`` (``[REDACTED]`` when no variable name is known). Files are
matched as bytes (UTF-8 forms), which is exact for UTF-8 text and never fails on binary files. A file is
rewritten atomically (temporary copy + rename); when the disk is full it is overwritten in place with
masks of the same length (``[REDACTED]****``), which needs no free space.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import math
import os
import re
import stat
import tempfile
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MIN_SECRET_LEN = 6
"""Values at least this long are hidden wherever they occur, in every form."""
MIN_SHORT_LEN = 3
"""Shorter values (1-2 characters) cannot be hidden without mangling all text; the run header says so."""
MIN_PART_LEN = 8
"""The shortest run of a value's characters hidden on its own (values of 16+ characters)."""
_WORD = "A-Za-z0-9_"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _base64_cores(value: bytes) -> set[str]:
    """For each alignment (0-2 bytes before the value), the base64 characters fixed by the value's bytes alone."""
    cores = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + value).decode()
        first = math.ceil(8 * shift / 6)
        last = (8 * (shift + len(value))) // 6  # exclusive: chars whose 6 bits all lie in the value
        core = encoded[first:last]
        if len(core) >= MIN_SECRET_LEN:
            cores |= {core, core.translate(str.maketrans("+/", "-_"))}
    return cores


def forms_of(value: str) -> set[str]:
    """The literal forms of a value of MIN_SECRET_LEN+ characters (raw, json, repr, url, base64)."""
    found = {value}
    escaped = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    escaped |= {e.replace("/", "\\/") for e in escaped}
    found |= escaped | {json.dumps(e)[1:-1] for e in escaped}
    found |= {repr(value)[1:-1], repr(value + "'\"")[1:-3]}  # both of repr's quoting styles
    for quoted in (urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe="")):
        found |= {quoted, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)}
    found |= _base64_cores(value.encode())
    return {f for f in found if len(f) >= MIN_SECRET_LEN}


class _Matcher:
    """Every secret's forms, compiled for one alphabet: text (str) or bytes (as latin-1 characters)."""

    def __init__(self, names: dict[str, str | None], as_bytes: bool):
        def enc(s: str) -> str:
            return s.encode().decode("latin-1") if as_bytes else s

        self.literals: dict[str, str] = {}  # form -> label; the longest secret's label wins a shared form
        self.parts: list[tuple[str, int, str]] = []  # (value, shortest run, label)
        self.short: dict[str, str] = {}
        for value in sorted(names, key=len, reverse=True):
            label = _label(names[value])
            if len(value) < MIN_SHORT_LEN:
                continue
            if len(value) < MIN_SECRET_LEN:
                self.short.setdefault(enc(value), label)
                continue
            for form in forms_of(value):
                self.literals.setdefault(enc(form), label)
            if len(enc(value)) >= 2 * MIN_PART_LEN:
                self.parts.append((enc(value), len(enc(value)) // 2, label))
        self.short_re = (
            re.compile(
                f"(?<![{_WORD}])(?:{'|'.join(map(re.escape, sorted(self.short, key=len, reverse=True)))})(?![{_WORD}])"
            )
            if self.short
            else None
        )

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _alternation(literals: tuple[str, ...]) -> re.Pattern[str]:
        return re.compile("|".join(map(re.escape, literals)))

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, label) of every form found, overlaps merged."""
        found: list[tuple[int, int, str]] = []
        present = tuple(sorted((f for f in self.literals if f in text), key=len, reverse=True))
        if present:
            found += [
                (m.start(), m.end(), self.literals[m.group()])
                for m in self._alternation(present).finditer(text)
            ]
        for value, shortest, label in self.parts:
            found += _runs(text, value, shortest, label)
        if self.short_re is not None:
            found += [(m.start(), m.end(), self.short[m.group()]) for m in self.short_re.finditer(text)]
        return _merge(found)


def _runs(text: str, value: str, shortest: int, label: str) -> list[tuple[int, int, str]]:
    """Maximal runs of `value`'s characters in `text` at least `shortest` long, found from aligned anchors.

    Any run of `shortest`+ characters contains one whole block value[j*s:(j+1)*s] with s = shortest // 2,
    so looking for those few blocks (and extending each hit both ways) finds every run.
    """
    size = shortest // 2
    found = []
    for start in range(0, len(value) - size + 1, size):
        block = value[start : start + size]
        at = text.find(block)
        while at != -1:
            left, k = at, start
            while left > 0 and k > 0 and text[left - 1] == value[k - 1]:
                left, k = left - 1, k - 1
            right, k = at + size, start + size
            while right < len(text) and k < len(value) and text[right] == value[k]:
                right, k = right + 1, k + 1
            if right - left >= shortest:
                found.append((left, right, label))
            at = text.find(block, at + 1)
    return found


def _merge(spans: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    merged: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end, merged[-1][2])
            continue
        merged.append((start, end, label))
    return merged


def _label(name: str | None) -> str:
    return f"[REDACTED:{name}]" if name else "[REDACTED]"


def _replace(text: str, spans: list[tuple[int, int, str]]) -> str:
    out, last = [], 0
    for start, end, label in spans:
        out += [text[last:start], label]
        last = end
    return "".join(out) + text[last:]


def _mask(length: int, label: str) -> bytes:
    """A same-length stand-in for a span (in-place redaction on a full disk)."""
    for text in (label, "[REDACTED]"):
        if len(text) <= length:
            return (text + "*" * (length - len(text))).encode()
    return b"*" * length


class Redactor:
    """Known secret values and the variable names they came from; replaces them in text, JSON and files."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._names: dict[str, str | None] = {}
            self._matchers: dict[bool, _Matcher] = {}

    def register(self, value: str, name: str | None = None) -> None:
        """Hide `value` from now on (as ``[REDACTED:name]`` when `name` is given); empty values are ignored."""
        if isinstance(value, str) and value.strip():
            with self._lock:
                if value not in self._names or (name and not self._names[value]):
                    self._names[value] = name
                    self._matchers = {}

    def name_of(self, value: str) -> str | None:
        with self._lock:
            return self._names.get(value)

    def secrets(self) -> list[str]:
        """Registered secret values, longest first."""
        with self._lock:
            return sorted(self._names, key=len, reverse=True)

    def _matcher(self, as_bytes: bool) -> _Matcher:
        with self._lock:
            if as_bytes not in self._matchers:
                self._matchers[as_bytes] = _Matcher(dict(self._names), as_bytes)
            return self._matchers[as_bytes]

    def text(self, text: str) -> str:
        """`text` with every form of every known secret replaced by its label."""
        if not self._names or not text:
            return text
        spans = self._matcher(False).spans(text)
        return _replace(text, spans) if spans else text

    def json(self, obj: Any) -> Any:
        """A copy of `obj` (dicts, lists, tuples, strings; other values as is) redacted, dict keys too."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.json(k) if isinstance(k, str) else k: self.json(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.json(v) for v in obj)
        return obj

    def data(self, data: bytes) -> tuple[bytes, int]:
        """`data` redacted as bytes (UTF-8 forms) and the number of replacements."""
        if not self._names or not data:
            return data, 0
        text = data.decode("latin-1")
        spans = self._matcher(True).spans(text)
        if not spans:
            return data, 0
        return _replace(text, spans).encode("latin-1"), len(spans)

    def file(self, path: Path) -> int:
        """Redact `path` (atomically, mode kept; in place when the disk is full); the number of replacements."""
        if not self._names:
            return 0
        data = Path(path).read_bytes()
        new, count = self.data(data)
        if not count:
            return 0
        try:
            _rewrite(Path(path), new)
        except OSError as exc:
            if exc.errno not in _DISK_FULL:
                raise
            self._mask_in_place(Path(path), data)
        return count

    def _mask_in_place(self, path: Path, data: bytes) -> None:
        """Overwrite each secret's bytes with a mask of the same length: no new blocks, so no free space needed."""
        spans = self._matcher(True).spans(data.decode("latin-1"))
        with open(path, "r+b") as fh:
            for start, end, label in spans:
                fh.seek(start)
                fh.write(_mask(end - start, label))
            fh.flush()
            os.fsync(fh.fileno())

    def tree(self, root: Path) -> dict[str, int]:
        """Redact every regular file under `root` (symlinks not followed); ``{relative path: replacements}``."""
        root, changed, stack = Path(root), {}, [Path(root)]
        while stack:
            with os.scandir(stack.pop()) as it:
                entries = list(it)  # listed before rewriting, so our temporary files never show up
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False) and (n := self.file(Path(entry.path))):
                    changed[Path(entry.path).relative_to(root).as_posix()] = n
        return changed


def _rewrite(path: Path, data: bytes) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".redact", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
