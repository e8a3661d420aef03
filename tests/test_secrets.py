"""harness.infra.secrets: credentials parsing and loading, the redactor, and tools/env.sh."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.infra import secrets as sec

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-or-v1-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_redactor():
    sec._reset_for_tests()
    yield
    sec._reset_for_tests()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A=1", {"A": "1"}),
        ("\n\n# comment\n   # indented comment\nA=1\n\n", {"A": "1"}),
        ("export A=1", {"A": "1"}),
        ("export\tA=1", {"A": "1"}),
        ("export=1", {"export": "1"}),
        ("  A  =  spaced value  ", {"A": "spaced value"}),
        ("A=1\r\nB=2\r\n", {"A": "1", "B": "2"}),
        ("A='single # not a comment'", {"A": "single # not a comment"}),
        ("A='back\\slash \"kept\"'", {"A": 'back\\slash "kept"'}),
        ('A="double # not a comment"', {"A": "double # not a comment"}),
        (r'A="esc \"q\" and \\ back"', {"A": 'esc "q" and \\ back'}),
        (r'A="other \n kept"', {"A": r"other \n kept"}),
        ("A=value # trailing comment", {"A": "value"}),
        ("A=value\t# tab comment", {"A": "value"}),
        ("A=val#ue", {"A": "val#ue"}),
        ("A=#hash", {"A": "#hash"}),
        ("A= # only a comment", {"A": ""}),
        ("A='quoted' # comment after quote", {"A": "quoted"}),
        ("A=", {"A": ""}),
        ("A=''", {"A": ""}),
        ('A=""', {"A": ""}),
        ("A=x=y==", {"A": "x=y=="}),
        ("A=first\nB=2\nA=last", {"A": "last", "B": "2"}),
        ("_a_1=ok", {"_a_1": "ok"}),
        ("\ufeffA=1", {"A": "1"}),  # a leading byte-order mark is dropped
    ],
)
def test_parse_credentials(text: str, expected: dict[str, str]) -> None:
    assert sec.parse_credentials(text) == expected


@pytest.mark.parametrize(
    ("text", "lineno", "key", "secret"),
    [
        ("A=1\nsk-nokey-SECRETVALUE\n", 2, None, "SECRETVALUE"),
        ("# c\n\n1BAD=SECRETVALUE", 3, None, "SECRETVALUE"),
        ("MY-KEY=SECRETVALUE", 1, None, "SECRETVALUE"),
        ("SK_SECRETVALUE", 1, None, "SECRETVALUE"),
        ("A=1\nB='SECRETVALUE", 2, "B", "SECRETVALUE"),
        ('B="SECRETVALUE\\"', 1, "B", "SECRETVALUE"),
        ("B='SECRETVALUE' trailing", 1, "B", "SECRETVALUE"),
    ],
)
def test_parse_errors_name_line_and_key_not_value(
    text: str, lineno: int, key: str | None, secret: str
) -> None:
    with pytest.raises(HarnessError) as exc:
        sec.parse_credentials(text, source="creds.txt")
    msg = str(exc.value)
    assert f"creds.txt line {lineno}:" in msg
    assert secret not in msg
    assert "\n" not in msg
    if key:
        assert re.search(rf"\b{key}\b", msg)


def test_load_credentials_missing_file(tmp_path: Path) -> None:
    assert sec.load_credentials(tmp_path / "nope.txt") == []
    assert sec.known_secrets() == []


def test_load_credentials_env_wins_and_registers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESET_API_KEY", "from-env-123456")
    monkeypatch.delenv("NEW_API_KEY", raising=False)
    monkeypatch.delenv("EMPTY_API_KEY", raising=False)
    path = tmp_path / "credentials.txt"
    path.write_text("PRESET_API_KEY=from-file-123456\nNEW_API_KEY='new-value-123456'\nEMPTY_API_KEY=\n")
    assert sec.load_credentials(path) == ["NEW_API_KEY"]
    assert os.environ["PRESET_API_KEY"] == "from-env-123456"
    assert os.environ["NEW_API_KEY"] == "new-value-123456"
    assert "EMPTY_API_KEY" not in os.environ
    assert set(sec.known_secrets()) == {"from-env-123456", "from-file-123456", "new-value-123456"}
    assert sec.redact_text("x from-env-123456 y") == "x [REDACTED:PRESET_API_KEY] y"


def test_load_credentials_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRESET_API_KEY", "from-env-123456")
    path = tmp_path / "credentials.txt"
    path.write_text("PRESET_API_KEY=from-file-123456\n")
    assert sec.load_credentials(path, override=True) == ["PRESET_API_KEY"]
    assert os.environ["PRESET_API_KEY"] == "from-file-123456"


def test_load_credentials_bad_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "credentials.txt"
    path.write_text("OK=1\nnot a line SECRETVALUE\n")
    with pytest.raises(HarnessError, match=r"credentials\.txt line 2:") as exc:
        sec.load_credentials(path)
    assert "SECRETVALUE" not in str(exc.value)


def test_register_secret_and_short_values() -> None:
    """Values of 3-5 characters are hidden where they stand alone; 1-2 characters cannot be (the header says so)."""
    sec.register_secret("12345", "SHORT_KEY")
    sec.register_secret("123456")
    sec.register_secret("ab", "TINY_KEY")
    sec.register_secret("")
    assert sec.known_secrets() == ["123456", "12345", "ab"]
    assert sec.redact_text("a 12345 b 123456 c 123450 d x12345 ab") == (
        "a [REDACTED:SHORT_KEY] b [REDACTED] c 123450 d x12345 ab"
    )
    assert sec.short_secret_lines() == [
        "SHORT_KEY has 5 characters: hidden only where it stands alone (docs/secrets.md)",
        "TINY_KEY has 2 character(s): too short to hide in output; use a real key",
    ]


def test_register_env_secrets() -> None:
    env = {
        "CHUTES_API_KEY": "chutes-value-1",
        "GH_TOKEN": "ghp_tokenvalue",
        "APP_SECRET": "app-secret-val",
        "HF_TOKEN": "hf_abcdefgh",
        "HOME": "/root/homedir",
        "API_KEY_FILE": "/some/path/x",
        "SHORT_TOKEN": "abc",
    }
    names = sec.register_env_secrets(env)
    assert set(names) == {"CHUTES_API_KEY", "GH_TOKEN", "APP_SECRET", "HF_TOKEN", "SHORT_TOKEN"}
    assert set(sec.known_secrets()) == {
        *("chutes-value-1", "ghp_tokenvalue", "app-secret-val", "hf_abcdefgh", "abc")
    }
    assert sec.redact_text("Bearer ghp_tokenvalue") == "Bearer [REDACTED:GH_TOKEN]"


def test_redact_text_longest_first_and_labels() -> None:
    sec.register_secret("abcdef", "SHORT_TOKEN")
    sec.register_secret("abcdefghij", "LONG_API_KEY")
    sec.register_secret("unnamed-secret")
    sec.register_secret("unnamed-secret", "LATER_TOKEN")  # a name learned later is used
    sec.register_secret("abcdef", "OTHER_TOKEN")  # the first name stays
    assert sec.known_secrets()[0] == "unnamed-secret"
    text = "x abcdefghij y abcdef z unnamed-secret abcdefabcdef"
    assert sec.redact_text(text) == (
        "x [REDACTED:LONG_API_KEY] y [REDACTED:SHORT_TOKEN] z [REDACTED:LATER_TOKEN] "
        "[REDACTED:SHORT_TOKEN][REDACTED:SHORT_TOKEN]"
    )
    assert sec.redact_text("nothing here") == "nothing here"


def test_redact_text_special_characters() -> None:
    sec.register_secret("a.b*c(d)+$\\", "ODD_TOKEN")
    assert sec.redact_text("axbxcxdx a.b*c(d)+$\\") == "axbxcxdx [REDACTED:ODD_TOKEN]"


def test_redact_json() -> None:
    sec.register_secret(KEY, "OPENROUTER_API_KEY")
    obj = {
        "headers": {"Authorization": f"Bearer {KEY}"},
        KEY: [KEY, 1, None, True, 2.5, ("t", KEY)],
        3: "int key",
    }
    assert sec.redact_json(obj) == {
        "headers": {"Authorization": "Bearer [REDACTED:OPENROUTER_API_KEY]"},
        "[REDACTED:OPENROUTER_API_KEY]": [
            "[REDACTED:OPENROUTER_API_KEY]",
            1,
            None,
            True,
            2.5,
            ("t", "[REDACTED:OPENROUTER_API_KEY]"),
        ],
        3: "int key",
    }
    assert obj["headers"]["Authorization"] == f"Bearer {KEY}"  # a copy, not in place


def test_redact_file_text(tmp_path: Path) -> None:
    sec.register_secret(KEY, "OPENROUTER_API_KEY")
    path = tmp_path / "log.txt"
    path.write_text(f"héllo {KEY}\nagain {KEY}\n", encoding="utf-8")
    path.chmod(0o640)
    assert sec.redact_file(path) == 2
    assert path.read_text(encoding="utf-8") == (
        "héllo [REDACTED:OPENROUTER_API_KEY]\nagain [REDACTED:OPENROUTER_API_KEY]\n"
    )
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt"]  # no temporary file left
    assert sec.redact_file(path) == 0


def test_redact_file_binary(tmp_path: Path) -> None:
    sec.register_secret(KEY)
    path = tmp_path / "blob.bin"
    path.write_bytes(b"\xff\xfe\x00" + KEY.encode() + b"\x80\x00")
    assert sec.redact_file(path) == 1
    assert path.read_bytes() == b"\xff\xfe\x00[REDACTED]\x80\x00"


def test_redact_file_without_secrets_is_untouched(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("clean")
    assert sec.redact_file(path) == 0  # nothing registered
    sec.register_secret(KEY)
    os.utime(path, (time.time() - 3600,) * 2)
    before = path.stat().st_mtime_ns
    assert sec.redact_file(path) == 0
    assert path.stat().st_mtime_ns == before


def test_redact_tree(tmp_path: Path) -> None:
    sec.register_secret(KEY, "OPENROUTER_API_KEY")
    sec.register_secret("hf_secretvalue", "HF_TOKEN")
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "a.log").write_text(f"{KEY} {KEY}")
    (tmp_path / "sub" / "deep" / "b.json").write_text('{"t": "hf_secretvalue"}')
    (tmp_path / "sub" / "c.bin").write_bytes(b"\x00\xff" + KEY.encode())
    clean = tmp_path / "sub" / "clean.txt"
    clean.write_text("nothing")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.txt"
    outside.write_text(KEY)
    (tmp_path / "link.txt").symlink_to(outside)
    (tmp_path / "dirlink").symlink_to(tmp_path.parent, target_is_directory=True)
    old = time.time() - 3600
    os.utime(clean, (old, old))
    before = clean.stat().st_mtime_ns
    try:
        assert sec.redact_tree(tmp_path) == {"a.log": 2, "sub/deep/b.json": 1, "sub/c.bin": 1}
        assert outside.read_text() == KEY  # the symlink was not followed
    finally:
        outside.unlink()
    assert clean.stat().st_mtime_ns == before
    assert (tmp_path / "sub" / "deep" / "b.json").read_text() == '{"t": "[REDACTED:HF_TOKEN]"}'


def test_redact_tree_is_fast(tmp_path: Path) -> None:
    """10,000 small files, 3 secrets, 100 files to rewrite (in tmpfs when there is one: disk noise is not ours)."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    for i, value in enumerate(("first-secret-1", "second-secret-2", "third-secret-3")):
        sec.register_secret(value, f"S{i}_TOKEN")
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        root = Path(tmp)
        for d in range(100):
            (root / f"d{d}").mkdir()
            for f in range(100):
                text = f"line {d} {f}\n" + ("second-secret-2\n" if f == d else "")
                (root / f"d{d}" / f"f{f}.txt").write_text(text)
        start = time.perf_counter()
        changed = sec.redact_tree(root)
        elapsed = time.perf_counter() - start
    assert len(changed) == 100 and set(changed.values()) == {1}
    assert elapsed < 2.5, f"redact_tree took {elapsed:.2f}s for 10,000 files"


def _bash(script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", script, "bash", *args], cwd=ROOT, capture_output=True, text=True)


def test_env_sh_exports_without_printing(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.txt"
    value = "sk-abc 'q' \"d\" $HOME `x` \\ end"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    creds.write_text(f'# comment\nexport FOO_API_KEY="{escaped}"\nEMPTY_TOKEN=\nBAR=plain # note\n')
    r = _bash('source tools/env.sh "$1" && printf %s "$FOO_API_KEY"', str(creds))
    assert (r.returncode, r.stdout, r.stderr) == (0, value, "")
    r = _bash('source tools/env.sh "$1" && printf "%s|%s" "$BAR" "${EMPTY_TOKEN-unset}"', str(creds))
    assert (r.returncode, r.stdout, r.stderr) == (0, "plain|unset", "")


def test_env_sh_bad_file_errors_without_value(tmp_path: Path) -> None:
    creds = tmp_path / "credentials.txt"
    creds.write_text("GOOD=1\nFOO_API_KEY='sk-unterminated-SECRET\n")
    r = _bash('source tools/env.sh "$1"; echo "status=$? good=${GOOD-unset}"', str(creds))
    assert r.stdout == "status=2 good=unset\n"
    assert "line 2" in r.stderr and "FOO_API_KEY" in r.stderr and "sk-unterminated" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = _bash('source tools/env.sh "$1"; echo "status=$?"', str(tmp_path / "missing.txt"))
    assert r.stdout == "status=2\n" and "missing.txt" in r.stderr


def test_env_sh_executed_prints_hint() -> None:
    r = subprocess.run(["bash", "tools/env.sh"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0
    assert "source tools/env.sh" in r.stderr and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
