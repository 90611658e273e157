"""Atomic writes: a failure leaves nothing behind, success leaves a normally readable file; a
benchmark table run again replaces its own rows and keeps the others."""

from __future__ import annotations

import stat

import pandas as pd
import pytest

from recpress_utils.io import atomic_path, read_json, replace_rows, write_json


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


def test_rows_replace_only_the_rows_they_match(tmp_path):
    path = tmp_path / "bench.csv"
    first = pd.DataFrame({"size": ["e16", "e16"], "method": ["soft", "control"], "t": [1.0, 2.0]})
    assert replace_rows(path, first, match=["size"], order=["size", "method"])["method"].tolist() == ["control", "soft"]
    other = pd.DataFrame({"size": ["e64"], "method": ["control"], "t": [3.0]})
    replace_rows(path, other, match=["size"], order=["size", "method"])
    again = pd.DataFrame({"size": ["e16"], "method": ["rd"], "t": [4.0]})
    table = replace_rows(path, again, match=["size"], order=["size", "method"])
    assert table[["size", "method", "t"]].values.tolist() == [["e16", "rd", 4.0], ["e64", "control", 3.0]]
    assert pd.read_csv(path).equals(table)
    # keys read back from the CSV as numbers still match the same keys given as numbers
    by_seed = pd.DataFrame({"seed": [42, 43], "t": [1.0, 2.0]})
    replace_rows(tmp_path / "seeds.csv", by_seed, match=["seed"], order=["seed"])
    table = replace_rows(tmp_path / "seeds.csv", pd.DataFrame({"seed": [43], "t": [5.0]}), match=["seed"], order=["seed"])
    assert table.values.tolist() == [[42, 1.0], [43, 5.0]]
    # a rerun that brings a new column puts it where the new rows have it; old-only columns follow
    replace_rows(tmp_path / "cols.csv", pd.DataFrame({"size": ["e16"], "t": [1.0], "old": [0]}), match=["size"],
                 order=["size"])
    table = replace_rows(tmp_path / "cols.csv", pd.DataFrame({"size": ["e64"], "cpu": [2.0], "t": [3.0]}),
                         match=["size"], order=["size"])
    assert list(table.columns) == ["size", "cpu", "t", "old"]
    assert list(pd.read_csv(tmp_path / "cols.csv").columns) == ["size", "cpu", "t", "old"]
