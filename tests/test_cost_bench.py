"""The distillation methods' step-cost benchmark: every configured method of the tiny profile,
built as its toolkit run builds it (teachers, caches, pool), stepped on the same batches."""

from __future__ import annotations

import pandas as pd
import pytest

from recpress_utils.config import load_config
from recpress_utils.distill import cost_bench


@pytest.fixture(scope="module")
def tiny_kd_config(tiny_run):
    return load_config("config/tiny.yaml", {"results_dir": str(tiny_run.parent)})


def test_every_method_is_timed_beside_the_control(tiny_kd_config, tmp_path) -> None:
    table = cost_bench.time_methods(tiny_kd_config, "e16", steps=2, rounds=2)
    methods = list(tiny_kd_config["kd"]["methods"])
    assert table["method"].tolist() == ["control", *methods]
    assert (table["size"] == "e16").all() and (table["seconds_per_step"] > 0).all()
    assert (table["cpu_seconds_per_step"] > 0).all() and (table["clock"] == "cpu").all(), \
        "on a CPU the ratio is taken from the process's CPU seconds, which leave out waiting for a core"
    assert table.loc[0, "x_control"] == 1.0 and (table["x_control"] > 0).all()
    assert (table["steps"] == 2).all() and (table["rounds"] == 2).all()
    out = tmp_path / "kd_cost.csv"
    cost_bench.add_rows(out, table)
    again = cost_bench.time_methods(tiny_kd_config, "e64", methods=["soft"], steps=1, rounds=1)
    merged = cost_bench.add_rows(out, again)
    assert len(merged) == len(table) + 2 and merged["size"].tolist().count("e64") == 2
    merged = cost_bench.add_rows(out, again.assign(seconds_per_step=9.0))  # a size timed again replaces its rows
    assert len(merged) == len(table) + 2 and (merged.loc[merged["size"] == "e64", "seconds_per_step"] == 9.0).all()
    assert pd.read_csv(out).equals(merged)


def test_an_unknown_method_or_a_missing_teacher_is_named_before_anything_loads(tmp_path) -> None:
    nothing_run = load_config("config/tiny.yaml", {"results_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="nope"):
        cost_bench.time_methods(nothing_run, "e16", methods=["nope"], steps=1, rounds=1)
    with pytest.raises(FileNotFoundError, match="kd method rd: train its teachers first"):
        cost_bench.time_methods(nothing_run, "e16", methods=["rd"], steps=1, rounds=1)
