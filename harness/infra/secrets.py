"""Credentials (secrets/credentials.txt) and redaction of secrets from everything the harness writes.

File syntax, one ``KEY=VALUE`` per line: blank lines and full-line ``#`` comments are skipped; an
``export `` prefix and whitespace around the line and the ``=`` are allowed; a value may be wrapped in
single quotes (taken literally) or double quotes (``\\"`` and ``\\\\`` are unescaped, any other backslash
is kept); an unquoted value ends at a `` #`` trailing comment (``#`` preceded by whitespace). Values are
single-line. A duplicate key is not an error: the last line wins, as when a shell sources the file.
Errors name the file, the line number and (once parsed) the key, and never the value or the line text.

Redaction: one module-level `Redactor` (`register_secret`, `redact_text`, ... are its bound methods;
`_reset_for_tests()` clears it) replaces each known secret by ``[REDACTED:<KEY>]``, or ``[REDACTED]``
when no variable name is known (the longest secret first, so overlapping secrets are fully hidden).
Values shorter than 6 characters are ignored: redacting them would mangle ordinary text ("true", "1234")
and they are too short to be real credentials. Files are redacted as bytes (the UTF-8 encoding of each
secret), which is exact for UTF-8 text and never fails on binary files.

``python -m harness.infra.secrets --export PATH`` prints ``export KEY=<quoted>`` lines for tools/env.sh.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

MIN_SECRET_LEN = 6
SECRET_SUFFIXES = ("_API_KEY", "_TOKEN", "_SECRET")
SECRET_NAMES = ("CHUTES_API_KEY", "OPENROUTER_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "HF_TOKEN")

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_EXPORT = re.compile(r"export\s+")
_TRAILING_COMMENT = re.compile(r"\s#")
_QUOTED = {"'": re.compile(r"'([^']*)'(.*)"), '"': re.compile(r'"((?:[^"\\]|\\.)*)"(.*)')}
_ESCAPE = re.compile(r'\\(["\\])')


def _bad(source: str, lineno: int, what: str) -> HarnessError:
    return HarnessError(f"{source} line {lineno}: {what}; fix it (see secrets/credentials.example.txt)")


def parse_credentials(text: str, source: str = "credentials.txt") -> dict[str, str]:
    """``{KEY: value}`` from credentials text (syntax in the module docstring; duplicate keys: last wins)."""
    result: dict[str, str] = {}
    for lineno, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _EXPORT.match(line):
            line = line[m.end() :]
        if "=" not in line:
            raise _bad(source, lineno, "no '=' (expected KEY=VALUE)")
        key, rest = line.split("=", 1)
        key = key.strip()
        if not _KEY.fullmatch(key):
            raise _bad(source, lineno, "the name before '=' is not a valid variable name")
        if (quote := rest.lstrip()[:1]) in _QUOTED:
            if not (m := _QUOTED[quote].fullmatch(rest.strip())):
                raise _bad(source, lineno, f"no closing {quote} in the value of {key} (one line only)")
            value = _ESCAPE.sub(r"\1", m[1]) if quote == '"' else m[1]
            if m[2].strip() and not m[2].strip().startswith("#"):
                raise _bad(source, lineno, f"unexpected text after the closing quote of {key}")
        else:
            m = _TRAILING_COMMENT.search(rest)
            value = (rest[: m.start()] if m else rest).strip()
        result[key] = value
    return result


class Redactor:
    """Known secret values and the variable names they came from; replaces them in text, JSON and files."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.clear()

    def clear(self) -> None:
        with self._lock:
            self._names: dict[str, str | None] = {}
            self._compiled: tuple[re.Pattern[str], re.Pattern[bytes], dict[bytes, bytes]] | None = None

    def register(self, value: str, name: str | None = None) -> None:
        """Redact `value` from now on (as ``[REDACTED:name]`` when `name` is given); < 6 characters: ignored."""
        if isinstance(value, str) and len(value) >= MIN_SECRET_LEN:
            with self._lock:
                if value not in self._names or (name and not self._names[value]):
                    self._names[value] = name
                    self._compiled = None

    def secrets(self) -> list[str]:
        """Registered secret values, longest first."""
        with self._lock:
            return sorted(self._names, key=len, reverse=True)

    def _label(self, value: str) -> str:
        name = self._names.get(value)
        return f"[REDACTED:{name}]" if name else "[REDACTED]"

    def _patterns(self) -> tuple[re.Pattern[str], re.Pattern[bytes], dict[bytes, bytes]]:
        """Alternations of all secrets, longest first (so the longest of overlapping secrets wins)."""
        with self._lock:
            if self._compiled is None:
                ordered = self.secrets()
                by_bytes = {s.encode(): self._label(s).encode() for s in ordered}
                text_re = re.compile("|".join(map(re.escape, ordered)))
                self._compiled = (text_re, re.compile(b"|".join(map(re.escape, by_bytes))), by_bytes)
            return self._compiled

    def text(self, text: str) -> str:
        """`text` with every known secret replaced by its label."""
        return self._patterns()[0].sub(lambda m: self._label(m.group()), text) if self._names else text

    def json(self, obj: Any) -> Any:
        """A copy of `obj` (dicts, lists, tuples, strings; other values as is) redacted, dict keys too."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.json(k) if isinstance(k, str) else k: self.json(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self.json(v) for v in obj)
        return obj

    def file(self, path: Path) -> int:
        """Rewrite `path` atomically (mode kept) only if it contains a secret; the number of replacements."""
        if not self._names:
            return 0
        _, pattern, by_bytes = self._patterns()
        data = Path(path).read_bytes()
        if not any(s in data for s in by_bytes):
            return 0
        new, count = pattern.subn(lambda m: by_bytes[m.group()], data)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        fd, tmp = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".redact", dir=Path(path).parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(new)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return count

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


_DEFAULT = Redactor()
register_secret = _DEFAULT.register
known_secrets = _DEFAULT.secrets
redact_text = _DEFAULT.text
redact_json = _DEFAULT.json
redact_file = _DEFAULT.file
redact_tree = _DEFAULT.tree
_reset_for_tests = _DEFAULT.clear  # the module-level redactor is process-wide state


def register_env_secrets(env: Mapping[str, str] = os.environ) -> list[str]:
    """Register values of ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET`` and well-known key variables; their names."""
    names = [k for k in env if k.endswith(SECRET_SUFFIXES) or k in SECRET_NAMES]
    for name in names:
        register_secret(env[name], name)
    return names


def _read(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise HarnessError(f"{path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise HarnessError(f"cannot read {path} ({exc.strerror}): check its permissions") from None


def load_credentials(path: Path, *, override: bool = False) -> list[str]:
    """Put the file's keys into os.environ and register their values for redaction; the keys set.

    A missing file is fine (returns []). A variable already in the environment wins unless
    `override`: an operator's explicit ``export`` is more deliberate than a line in a file. Empty values
    (the template's ``KEY=``) are never set. Both the file's and the environment's values are registered.
    """
    path = Path(path)
    if not path.is_file():
        return []
    loaded = []
    for key, value in parse_credentials(_read(path), str(path)).items():
        register_secret(value, key)
        if os.environ.get(key):
            register_secret(os.environ[key], key)
        if value and (override or not os.environ.get(key)):  # an empty variable counts as unset
            os.environ[key] = value
            loaded.append(key)
    return loaded


def main(argv: list[str] | None = None) -> int:
    """``--export PATH``: print ``export KEY=<quoted>`` per non-empty value (the file wins: sourcing is explicit)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--export":
        print("usage: python -m harness.infra.secrets --export PATH", file=sys.stderr)
        return 2
    path = Path(args[1])
    try:
        if not path.is_file():
            raise HarnessError(f"no credentials file at {path}: copy secrets/credentials.example.txt there")
        values = parse_credentials(_read(path), str(path))
    except HarnessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items() if v), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
