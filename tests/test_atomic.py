"""pronscore.atomic: a failed write leaves the old output as it was and no temporary behind."""

from __future__ import annotations

import pytest

from pronscore.atomic import atomic_path, atomic_write_text, replace_dir


def test_a_failed_file_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.jsonl"
    atomic_write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp, tmp.open("w") as f:
        f.write("half a line")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_finished_file_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "m.safetensors"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and oct(target.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.safetensors"]


def test_a_failed_folder_write_keeps_the_old_folder(tmp_path):
    run = tmp_path / "run"
    with replace_dir(run) as tmp:
        (tmp / "config.json").write_text("{}")
    with pytest.raises(ValueError), replace_dir(run) as tmp:
        (tmp / "config.json").write_text('{"half": ')
        raise ValueError("training failed")
    assert (run / "config.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
