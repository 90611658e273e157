"""The paper-scale scaling table: fractions of the profile, the table's rows and the fitted growth."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import yaml

from recpress_utils import scaling
from recpress_utils.config import raw_events
from recpress_utils.paths import repo_path


def test_a_fraction_scales_sessions_and_users_and_keeps_the_catalogue():
    full = yaml.safe_load(repo_path(scaling.PROFILE).read_text())["synthetic"]
    layer = scaling.overlay(Fraction(1, 16))
    assert layer["results_dir"] == "results/paper-scale/f1_16"
    assert layer["synthetic"] == {"n_sessions": round(full["n_sessions"] / 16), "n_users": round(full["n_users"] / 16)}
    assert full["monthly"] and full["n_items"] == 150000  # the paper's catalogue at every size
    cfg = {"dataset": "synthetic", "results_dir": layer["results_dir"], "synthetic": {**full, **layer["synthetic"]}}
    assert raw_events(cfg) == ["results/paper-scale/f1_16/synthetic/raw/2019-Oct.csv",
                               "results/paper-scale/f1_16/synthetic/raw/2019-Nov.csv"]


def _fake_run(root, fraction: Fraction, events: int, seconds: dict[str, float]) -> None:
    results = root / scaling.folder(fraction) / "synthetic"
    (results / "benchmarks").mkdir(parents=True)
    (results / "prepared").mkdir()
    (results / "prepared" / "stats.json").write_text(json.dumps({"read": {"rows_read": events}}))
    for job, s in seconds.items():
        (results / "benchmarks" / f"{job}.tsv").write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:00\t{s * 10}\n")


def test_the_table_has_a_row_per_stage_and_size_and_the_fit_finds_the_growth(tmp_path, monkeypatch):
    monkeypatch.setattr(scaling, "repo_path", lambda *parts: tmp_path.joinpath(*parts))
    fractions = [Fraction(1, 16), Fraction(1, 4), Fraction(1)]
    for f in fractions:
        events = int(64_000_000 * f)
        # one stage linear in the events, one quadratic
        _fake_run(tmp_path, f, events, {"01_prepare_data": events / 1e6, "02_build_kg": (events / 1e6) ** 2 / 100})
    table = scaling.collect(fractions)
    assert list(table.columns) == scaling.COLUMNS and len(table) == 6
    assert table.groupby("stage")["fraction"].apply(list).to_dict() == {
        "01_prepare_data": ["1/16", "1/4", "1"], "02_build_kg": ["1/16", "1/4", "1"]}
    growth = scaling.growth_exponents(table)
    assert growth.loc["01_prepare_data", "seconds_exponent"] == pytest.approx(1.0, abs=1e-6)
    assert growth.loc["02_build_kg", "seconds_exponent"] == pytest.approx(2.0, abs=1e-6)
    assert growth.loc["02_build_kg", "largest_max_rss_mb"] == pytest.approx(64 ** 2 / 100 * 10, rel=1e-3)


def test_the_committed_table_keeps_every_stage_under_24_gib_at_full_size():
    path = repo_path("reports/paper-scale/scaling.csv")
    if not path.exists():
        pytest.skip("no committed scaling table yet")
    table = pd.read_csv(path)
    assert list(table.columns) == scaling.COLUMNS
    assert {"1/16", "1/4"} <= set(table["fraction"].astype(str))
    full = table[table["fraction"].astype(str) == "1"]
    if len(full):
        assert (full["max_rss_mb"] < 24 * 1024).all(), full[full["max_rss_mb"] >= 24 * 1024]
    assert np.isfinite(table[["seconds", "max_rss_mb"]].to_numpy()).all()


def test_collect_keeps_committed_rows_it_did_not_measure_again(tmp_path, monkeypatch):
    """Results folders do not outlive a machine: a later session that reruns one size (or adds
    stages) replaces its own rows and keeps the committed ones it did not redo."""
    monkeypatch.setattr(scaling, "repo_path", lambda *parts: tmp_path.joinpath(*parts))
    previous = pd.DataFrame([["01_prepare_data", "1/16", 4_000_000, 30.0, 100.0],
                             ["01_prepare_data", "1", 64_000_000, 400.0, 1000.0]], columns=scaling.COLUMNS)
    _fake_run(tmp_path, Fraction(1), 64_000_000, {"01_prepare_data": 500.0, "04_train_model_student_s42": 90.0})
    table = scaling.collect([Fraction(1, 16), Fraction(1)], previous)
    assert list(table.columns) == scaling.COLUMNS
    rows = {(r.stage, r.fraction): r.seconds for r in table.itertuples()}
    assert rows == {("01_prepare_data", "1/16"): 30.0, ("01_prepare_data", "1"): 500.0,
                    ("04_train_model_student_s42", "1"): 90.0}
    assert "04_train_model_student_s42" not in scaling.growth_exponents(table).index  # one size: no fit
    added = scaling.collect([Fraction(1)], previous, only=["04_"])  # the data stage stays as committed
    assert {(r.stage, r.fraction): r.seconds for r in added.itertuples()} == {
        ("01_prepare_data", "1/16"): 30.0, ("01_prepare_data", "1"): 400.0, ("04_train_model_student_s42", "1"): 90.0}
    assert "not run" in scaling.readme_table(table)


def test_node2vec_rows_carry_their_walks_per_item(tmp_path, monkeypatch):
    """Node2Vec's cost is linear in its walks: a size run with other walk settings is another row."""
    monkeypatch.setattr(scaling, "repo_path", lambda *parts: tmp_path.joinpath(*parts))
    _fake_run(tmp_path, Fraction(1), 64_000_000, {"03_node2vec_s42": 900.0})
    stats = tmp_path / scaling.folder(Fraction(1)) / "synthetic" / "embeddings" / "s42" / "node2vec_stats.json"
    stats.parent.mkdir(parents=True)
    stats.write_text(json.dumps({"config": {"num_walks": 2}}))
    assert scaling.collect([Fraction(1)])["stage"].tolist() == ["03_node2vec_s42 (2 walks/item)"]


def test_every_stage_of_the_figure_is_told_apart_beyond_ten_colours():
    """The committed table has more stages than matplotlib's ten colours: no two lines look alike."""
    table = pd.DataFrame({"stage": [f"stage {i:02d}" for i in range(13) for _ in (0, 1)],
                          "events": [1e6, 1e7] * 13, "seconds": 10.0, "max_rss_mb": 100.0})
    lines = scaling.figure(table).axes[0].get_lines()
    looks = {(str(line.get_color()), line.get_linestyle(), line.get_marker()) for line in lines}
    assert len(lines) == 13 and len(looks) == 13
