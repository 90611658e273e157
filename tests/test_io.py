"""Atomic writes: a failure leaves nothing behind, success leaves a normally readable file."""

from __future__ import annotations

import stat

import pytest

from recpress_utils.io import atomic_path, read_json, write_json


def test_failure_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_success_is_readable_by_others(tmp_path):
    write_json({"b": 1, "a": [1, 2]}, tmp_path / "x.json")
    assert read_json(tmp_path / "x.json") == {"a": [1, 2], "b": 1}
    assert (tmp_path / "x.json").stat().st_mode & stat.S_IROTH
