"""The cache comparison: both ways to distil run from the profile's trained teacher, the full way is
the pipeline's own on-the-fly distillation, and the table keeps one row per setting."""

from __future__ import annotations

import pandas as pd
import pytest

from recpress_utils.config import load_config
from recpress_utils.distill.cache_bench import KEYS, add_row, compare, time_variants
from recpress_utils.io import read_json


def test_time_variants_times_all_three_ways_on_prepared_data(tiny_prepared) -> None:
    out = time_variants(str(tiny_prepared), top_k=10, n_negatives=32, n_batches=2, batch_size=64)
    assert len(out["seconds_per_epoch"]) == 3 and all(s > 0 for s in out["seconds_per_epoch"].values())
    assert out["epoch_batches"] >= 2 and 0 < out["cache_prefixes"] and out["cache_build_seconds"] >= 0


@pytest.fixture(scope="module")
def tiny_cached_config(tiny_run):
    """The tiny profile over the tiny run's results, distilling from a top-10 cache and a pool of 32."""
    return load_config("config/tiny.yaml", {"results_dir": str(tiny_run.parent),
                                            "distill": {"top_k": 10, "negatives": {"n_negatives": 32,
                                                                                   "uniform_mix": 0.05}}})


def test_full_mode_is_the_pipelines_on_the_fly_distillation(tiny_run, tiny_cached_config) -> None:
    """The tiny pipeline distils on the fly (distill.top_k: null) at the benchmark's temperature with
    the same seed, so one epoch of the comparison's full mode is its first epoch, number for number."""
    row = compare(tiny_cached_config, "full", epochs=1, progress=False)
    pipeline = read_json(tiny_run / "runs" / "student-T1_s42" / "metrics.json")["history"][0]
    assert row["top_k"] is None and row["n_negatives"] is None and row["cache_seconds"] == 0.0
    assert row["valid_MRR@20"] == pytest.approx(pipeline["MRR@20"], abs=1e-6)
    assert row["best_epoch"] == 1 and row["peak_rss_mb"] > 0 and row["seconds_per_epoch"] > 0


def test_cached_mode_uses_the_profiles_cache_and_pool(tiny_cached_config) -> None:
    row = compare(tiny_cached_config, "cached", epochs=2, progress=False)
    assert (row["mode"], row["top_k"], row["n_negatives"], row["epochs"]) == ("cached", 10, 32, 2)
    assert row["cache_seconds"] > 0 and 1 <= row["best_epoch"] <= 2
    assert 0 <= row["test_MRR@20"] <= row["test_HR@20"] <= 1


def test_compare_refuses_a_profile_without_a_cache_and_an_unknown_mode(tiny_run) -> None:
    config = load_config("config/tiny.yaml", {"results_dir": str(tiny_run.parent)})
    with pytest.raises(ValueError, match="without a cache"):
        compare(config, "cached", epochs=1)
    with pytest.raises(ValueError, match="mode must be"):
        compare(config, "half", epochs=1)


def test_add_row_replaces_the_row_with_the_same_keys(tmp_path) -> None:
    path = tmp_path / "teacher_cache.csv"
    base = {"mode": "full", "temperature": 1.0, "seed": 42, "epochs": 3, "test_MRR@20": 0.25}
    add_row(path, base)
    add_row(path, {**base, "mode": "cached", "test_MRR@20": 0.24})
    table = add_row(path, {**base, "test_MRR@20": 0.26})
    assert list(table["mode"]) == ["cached", "full"] and list(table["test_MRR@20"]) == [0.24, 0.26]
    assert pd.read_csv(path)[KEYS].equals(table[KEYS])
