"""Credentials (secrets/credentials.txt) and redaction of secrets from everything the harness writes.

File syntax, one ``KEY=VALUE`` per line: blank lines and full-line ``#`` comments are skipped; an
``export `` prefix and whitespace around the line and the ``=`` are allowed; a value may be wrapped in
single quotes (taken literally) or double quotes (``\\"`` and ``\\\\`` are unescaped, any other backslash
is kept); an unquoted value ends at a `` #`` trailing comment (``#`` preceded by whitespace). Values are
single-line. A duplicate key is not an error: the last line wins, as when a shell sources the file.
Errors name the file, the line number and (once parsed) the key, and never the value or the line text.

Redaction: one module-level `Redactor` (harness.infra.redaction: the forms a key takes, raw, JSON, repr,
URL-encoded, base64, halves; `register_secret`, `redact_text`, ... are its bound methods;
`_reset_for_tests()` clears it) replaces each known secret by ``[REDACTED:<KEY>]``. What is registered:
every value of the credentials file, every variable a model or provider names (`register_named_secrets`),
``*_API_KEY``/``*_TOKEN``/``*_SECRET`` variables, and secret-like entries of the agents' own ``.env`` files
(`agent_dotenv_files`): keys belong in secrets/credentials.txt, never there, but one found there is hidden too.

``python -m harness.infra.secrets --export PATH`` prints ``export KEY=<quoted>`` lines for tools/env.sh.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from harness.errors import HarnessError
from harness.infra.redaction import MIN_SECRET_LEN, MIN_SHORT_LEN, Redactor

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


_DEFAULT = Redactor()
register_secret = _DEFAULT.register
known_secrets = _DEFAULT.secrets
redact_text = _DEFAULT.text
redact_json = _DEFAULT.json
redact_file = _DEFAULT.file
redact_tree = _DEFAULT.tree
redact_bytes = _DEFAULT.data
secret_name = _DEFAULT.name_of
_reset_for_tests = _DEFAULT.clear  # the module-level redactor is process-wide state


def register_env_secrets(env: Mapping[str, str] = os.environ) -> list[str]:
    """Register values of ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET`` and well-known key variables; their names."""
    names = [k for k in env if k.endswith(SECRET_SUFFIXES) or k in SECRET_NAMES]
    for name in names:
        register_secret(env[name], name)
    return names


def register_named_secrets(names: Iterable[str], env: Mapping[str, str] = os.environ) -> list[str]:
    """Register the values of variables a model or provider names as its key (any name); the names set."""
    found = sorted({n for n in names if n and env.get(n)})
    for name in found:
        register_secret(env[name], name)
    return found


def short_secret_lines() -> list[str]:
    """Run-header notes on registered keys under MIN_SECRET_LEN characters (docs/secrets.md: short keys)."""
    lines = []
    for value in known_secrets():
        name = secret_name(value) or "a key"
        if len(value) < MIN_SHORT_LEN:
            lines.append(f"{name} has {len(value)} character(s): too short to hide in output; use a real key")
        elif len(value) < MIN_SECRET_LEN:
            lines.append(
                f"{name} has {len(value)} characters: hidden only where it stands alone (docs/secrets.md)"
            )
    return sorted(lines)


_SECRET_LIKE = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH", re.I)


def agent_dotenv_files(environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The .env files the agents load by themselves: mini-swe-agent's global config (loaded into os.environ at
    its import) and SWE-agent's checkout root (loaded by `sweagent run-batch`). Found without importing them."""
    import importlib.util

    files = []
    mini_dir = environ.get("MSWEA_GLOBAL_CONFIG_DIR")
    if not mini_dir:
        try:
            from platformdirs import user_config_dir

            mini_dir = user_config_dir("mini-swe-agent")
        except ImportError:  # mini-swe-agent (which needs platformdirs) is not installed
            mini_dir = None
    if mini_dir:
        files.append(Path(mini_dir) / ".env")
    sweagent_root = environ.get("SWE_AGENT_CONFIG_ROOT")
    if not sweagent_root and (spec := importlib.util.find_spec("sweagent")) is not None and spec.origin:
        sweagent_root = str(Path(spec.origin).resolve().parents[1])
    if sweagent_root:
        files.append(Path(sweagent_root) / ".env")
    return [f for f in files if f.is_file()]


def register_dotenv_secrets(paths: Iterable[Path], named: Iterable[str] = ()) -> list[str]:
    """Register values of secret-like names (KEY, TOKEN, SECRET, ...) and of `named` variables in .env files."""
    from dotenv import dotenv_values

    named, found = set(named), []
    for path in paths:
        for name, value in dotenv_values(path).items():
            if value and (name in named or _SECRET_LIKE.search(name)):
                register_secret(value, name)
                found.append(name)
    return sorted(set(found))


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
        for found in (value, os.environ.get(key, "")):
            if len(found) >= MIN_SECRET_LEN or _SECRET_LIKE.search(key):  # `DEBUG=1` is not a key
                register_secret(found, key)
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
