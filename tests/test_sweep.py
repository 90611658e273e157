"""The committed sweeps: grid parsing, and settings chosen on validation without reading the test split."""

from __future__ import annotations

import pandas as pd
import pytest

import recpress_utils.sweep as sweep_mod
from recpress_utils.config import load_config
from recpress_utils.paths import REPO_ROOT
from recpress_utils.sweep import merge_tables


def test_the_grid_is_parsed_as_yaml_scalars_and_crossed():
    grid = sweep_mod.parse_grid(["k=50,100", "lambda_recency=none,2.5", "train.lr=0.001"])
    assert grid == {"k": [50, 100], "lambda_recency": [None, 2.5], "train.lr": [0.001]}
    assert len(sweep_mod.grid_points(grid)) == 4
    assert sweep_mod.grid_points(grid)[0] == {"k": 50, "lambda_recency": None, "train.lr": 0.001}
    with pytest.raises(ValueError, match="key=v1,v2"):
        sweep_mod.parse_grid(["k"])


def test_a_sweep_scores_on_validation_and_never_reads_the_test_split(tiny_prepared, monkeypatch):
    read = []
    original = sweep_mod.load_sessions
    monkeypatch.setattr(sweep_mod, "load_sessions", lambda d, split: read.append(split) or original(d, split))
    config = load_config(REPO_ROOT / "config" / "tiny.yaml")
    table = sweep_mod.sweep(config, "vsknn", {"k": [1, 50], "sample_size": [100]}, prepared_dir=tiny_prepared)
    assert set(read) == {"train", "valid"}
    assert sorted(table["k"]) == [1, 50] and (table["sample_size"] == 100).all()
    metric = "NDCG@10"  # the tiny profile's select_metric
    assert table[metric].is_monotonic_decreasing and table[metric].iloc[0] > 0
    assert table.loc[table["k"] == 1, metric].item() != table.loc[table["k"] == 50, metric].item()


def test_a_refined_round_joins_the_committed_table_and_replaces_a_point_scored_again():
    old = pd.DataFrame({"k": [50, 100], "MRR@20": [0.20, 0.25], "seconds": [1.0, 1.0]})
    new = pd.DataFrame({"k": [100, 200], "MRR@20": [0.26, 0.24], "seconds": [2.0, 2.0]})
    merged = merge_tables(old, new, ["k"], "MRR@20")
    assert merged["k"].tolist() == [100, 200, 50] and merged.loc[0, "seconds"] == 2.0
    with pytest.raises(ValueError, match="lambda"):
        merge_tables(old, new.assign(lambda_position=1), ["k", "lambda_position"], "MRR@20")
