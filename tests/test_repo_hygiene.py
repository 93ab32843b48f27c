"""No tracked file holds an absolute path of one machine: paths come from arguments,
environment variables or the package itself (system folders, URLs and API routes are fine)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# A rooted path of two or more parts at the start of a line or after a space, quote, backtick,
# bracket or "="; relative paths ("data/so762", "../shared/...") never match.
ABSOLUTE = re.compile(r"(?:^|[\s\"'`(=\[])(/[A-Za-z_.-]+(?:/[A-Za-z0-9_.-]+)+)")
URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")
SYSTEM = ("dev", "usr", "etc", "proc", "sys", "bin", "sbin", "lib", "opt", "var", "run", "tmp")
ROUTES = ("v1", "static", "health", "docs", "openapi.json")
ALLOWED = tuple(f"/{d}/" for d in SYSTEM + ROUTES)
BINARY = (".wav", ".flac", ".png", ".jpg", ".parquet", ".safetensors", ".txt.gz", ".lgb")


def machine_paths(text: str) -> list[tuple[int, str]]:
    """(line number, path) of every absolute path outside system folders, URLs and routes."""
    found = []
    for n, line in enumerate(text.splitlines(), 1):
        for m in ABSOLUTE.finditer(URL.sub(" ", line)):
            if not m.group(1).startswith(ALLOWED):
                found.append((n, m.group(1)))
    return found


def tracked_files() -> list[Path]:
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    r = subprocess.run([git, "-C", str(REPO), "ls-files", "-z"], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"not a git checkout: {REPO}")
    return [REPO / name for name in r.stdout.split("\0") if name and not name.endswith(BINARY)]


def test_detector_flags_machine_paths_and_allows_the_rest() -> None:
    home = "/" + "home/alice"  # built so that this file holds no such path itself
    assert machine_paths(f'CORPUS = "{home}/so762"\nok = 1\n    {home}/x') == [
        (1, f"{home}/so762"),
        (3, f"{home}/x"),
    ]
    assert machine_paths(f"--data={home}/d and `{home}/e`") == [(1, f"{home}/d"), (1, f"{home}/e")]
    allowed = (
        "see https://github.com/x/y/blob/main/a.py and http://127.0.0.1:8000/v1/assess",
        'open("/dev/null"); Path("/tmp/x/y"); /usr/bin/env python; "/proc/self/status"',
        'client.post("/v1/assess"); get("/static/app.js"); "/docs", "/health"',
        "relative: data/so762, ../shared/models/whisper-base-encoder, a/b/c, ./x/y",
        "a ratio 1/2/3 and a fraction x /y",
    )
    for line in allowed:
        assert machine_paths(line) == [], line


def test_no_tracked_file_holds_a_machine_path() -> None:
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # binary or unreadable: no text paths
        rel = path.relative_to(REPO)
        offenders += [f"{rel}:{n}: {p}" for n, p in machine_paths(text)]
    assert offenders == [], "absolute machine paths (use an argument or env var):\n" + "\n".join(
        offenders
    )
