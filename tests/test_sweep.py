"""The committed sweeps: grid parsing, and settings chosen on validation without reading the test split."""

from __future__ import annotations

import pandas as pd
import pytest

import recpress_utils.sweep as sweep_mod
from recpress_utils.config import load_config, stage_params
from recpress_utils.grid import best_first, edge_keys, edge_text, grid_points, parse_grid
from recpress_utils.paths import REPO_ROOT
from recpress_utils.sweep import merge_tables


def test_the_grid_is_parsed_as_yaml_scalars_and_crossed():
    grid = parse_grid(["k=50,100", "lambda_recency=none,2.5", "train.lr=0.001"])
    assert grid == {"k": [50, 100], "lambda_recency": [None, 2.5], "train.lr": [0.001]}
    assert len(grid_points(grid)) == 4
    assert grid_points(grid)[0] == {"k": 50, "lambda_recency": None, "train.lr": 0.001}
    with pytest.raises(ValueError, match="key=v1,v2"):
        parse_grid(["k"])


def test_a_best_point_at_the_lowest_or_highest_value_tried_is_at_the_grids_edge():
    """Best first, as the sweep writes its table: dropout 0.2 is inside 0 to 0.4, lr 3e-4 the lowest
    tried, width 128 the highest; a key tried at one value, or best at "none", is no edge."""
    table = pd.DataFrame({"dropout": [0.2, 0.4, 0.0, 0.2], "train.lr": [3e-4, 1e-3, 1e-3, 3e-3],
                          "width": [128, 64, 64, 128], "max_len": [50] * 4, "lambda": [None, 2.5, 5, None],
                          "MRR@20": [0.17, 0.16, 0.15, 0.14]})
    keys = ["dropout", "train.lr", "width", "max_len", "lambda"]
    assert edge_keys(table, keys) == {"train.lr": "lowest", "width": "highest"}
    assert edge_text(edge_keys(table, keys)) == "at the grid's edge: train.lr its lowest, width its highest"
    inside = pd.DataFrame({"dropout": [0.2, 0.0, 0.4], "train.lr": [1e-3, 3e-3, 3e-4], "MRR@20": [0.17, 0.16, 0.15]})
    assert edge_keys(inside, ["dropout", "train.lr"]) == {} and edge_text({}) == ""
    assert edge_keys(table.iloc[:0], keys) == {}


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


def test_a_point_swept_at_several_seeds_is_ranked_by_its_mean_over_them():
    """One lucky seed does not make a point best: weight 0.1 tops seed 42 (0.30) but averages 0.20
    over both seeds, below weight 1's 0.25; a point's rows stay together, in seed order, and a
    round adding seed 43 to a committed seed-42 table re-ranks the merged points the same way."""
    table = pd.DataFrame({"size": "e16", "seed": [42, 42, 43, 43], "weight": [0.1, 1.0, 1.0, 0.1],
                          "MRR@20": [0.30, 0.26, 0.24, 0.10]})
    ranked = best_first(table, ["size", "weight"], "MRR@20")
    assert ranked[["weight", "seed"]].values.tolist() == [[1.0, 42], [1.0, 43], [0.1, 42], [0.1, 43]]
    one_seed = table[table["seed"] == 42]
    assert best_first(one_seed, ["size", "weight"], "MRR@20")["weight"].tolist() == [0.1, 1.0]
    merged = merge_tables(one_seed, table[table["seed"] == 43], ["size", "seed", "weight"], "MRR@20")
    assert merged.equals(ranked)
    tied = pd.DataFrame({"k": [5, 1, 3], "MRR@20": [0.2, 0.2, 0.3]})  # no seed column: the earlier point wins a tie
    assert best_first(tied, ["k"], "MRR@20")["k"].tolist() == [3, 5, 1]


def test_several_seeds_are_refused_for_a_models_sweep_before_anything_trains(capsys):
    with pytest.raises(SystemExit):
        sweep_mod.main(["--configfile", str(REPO_ROOT / "config" / "tiny.yaml"), "--model", "gru4rec",
                        "--grid", "train.lr=0.001", "--seed", "42", "43"])
    assert "several seeds need --kd-method" in capsys.readouterr().err


def test_a_round_that_sweeps_a_new_key_states_the_value_the_committed_rows_ran_at():
    """Widening a sweep to a new key: the committed rows take the value given for them, so a point
    of the new round at that value replaces its committed twin; without it, or with a key the
    round does not add, the merge refuses rather than leave a row that does not say its settings."""
    old = pd.DataFrame({"k": [50, 100], "MRR@20": [0.20, 0.25], "seconds": [1.0, 1.0]})
    new = pd.DataFrame({"k": [100, 100], "lr": [0.001, 0.003], "MRR@20": [0.26, 0.27], "seconds": [2.0, 2.0]})
    merged = merge_tables(old, new, ["k", "lr"], "MRR@20", committed_at={"lr": 0.001})
    assert list(merged.columns) == ["k", "lr", "MRR@20", "seconds"]
    assert merged[["k", "lr", "MRR@20"]].values.tolist() == [[100, 0.003, 0.27], [100, 0.001, 0.26], [50, 0.001, 0.20]]
    with pytest.raises(ValueError, match="committed-at"):
        merge_tables(old, new, ["k", "lr"], "MRR@20")
    with pytest.raises(ValueError, match="dropout"):
        merge_tables(old, new, ["k", "lr"], "MRR@20", committed_at={"lr": 0.001, "dropout": 0.2})


def profile_with_a_gru4rec_teacher(tiny_prepared, tmp_path, methods, **overrides):
    """The tiny profile writing to ``tmp_path`` with the kd ``methods`` added (``kd=`` adds more kd
    settings), its prepared data copied there and the seed-42 GRU4Rec teacher trained for one
    epoch: (config, results folder)."""
    import shutil

    from recpress_utils.runs import ModelSpec, train_run
    from recpress_utils.train import TrainConfig

    kd = {"methods": methods, **overrides.pop("kd", {})}
    config = load_config(REPO_ROOT / "config" / "tiny.yaml", {"results_dir": str(tmp_path), "kd": kd, **overrides})
    out = tmp_path / "synthetic"
    shutil.copytree(tiny_prepared, out / "prepared")
    train_run(ModelSpec.from_config("gru4rec"), out / "prepared", out / "runs" / "gru4rec_s42",
              TrainConfig(epochs=1, batch_size=128, device="cpu"), seed=42, threads=1, progress=False)
    return config, out


def test_a_kd_method_sweep_scores_on_validation_against_the_profiles_teacher(tiny_prepared, tmp_path, monkeypatch):
    """RD's weight swept on the tiny profile: the teacher is the profile's trained GRU4Rec run of
    the seed; the student is fitted per point and scored on validation; test is never read."""
    import recpress_utils.runs as runs

    config, _ = profile_with_a_gru4rec_teacher(tiny_prepared, tmp_path,
                                               {"rd_gru": {"method": "ranking", "teacher": "gru4rec"}})
    read = []
    original = runs.load_sessions
    monkeypatch.setattr(runs, "load_sessions", lambda d, split: read.append(split) or original(d, split))
    table = sweep_mod.kd_sweep(config, "rd_gru", {"weight": [0.0, 3.0]}, size="e16")
    assert "test" not in read and {"train", "valid"} <= set(read)
    assert sorted(table["weight"]) == [0.0, 3.0] and table["NDCG@10"].is_monotonic_decreasing
    assert list(table.columns[:3]) == ["size", "seed", "weight"] and set(table["size"]) == {"e16"}
    assert set(table["seed"]) == {42}
    assert table.loc[table["weight"] == 0.0, "NDCG@10"].item() != table.loc[table["weight"] == 3.0, "NDCG@10"].item()
    with pytest.raises(FileNotFoundError, match="train the teachers first"):
        sweep_mod.kd_sweep(config, "rd", {"weight": [1.0]})


def test_a_kd_sweep_at_two_seeds_fits_each_point_per_seed_and_ranks_by_the_mean(tiny_prepared, tmp_path):
    """With seeds 42 and 43 every point is fitted once per student seed (both learning from the
    seed-42 teacher, kd.teacher_seed): one row each, the seed-42 rows the same as a one-seed
    sweep's (its finished points are reused), and the best point the one with the higher mean."""
    config, _ = profile_with_a_gru4rec_teacher(tiny_prepared, tmp_path,
                                               {"rd_gru": {"method": "ranking", "teacher": "gru4rec"}},
                                               kd={"teacher_seed": 42})
    grid = {"weight": [0.0, 3.0]}
    one = sweep_mod.kd_sweep(config, "rd_gru", grid, size="e16")
    two = sweep_mod.kd_sweep(config, "rd_gru", grid, size="e16", seeds=[42, 43])
    assert sorted(zip(two["weight"], two["seed"])) == [(0.0, 42), (0.0, 43), (3.0, 42), (3.0, 43)]
    pd.testing.assert_frame_equal(two[two["seed"] == 42].sort_values("weight").reset_index(drop=True),
                                  one.sort_values("weight").reset_index(drop=True))
    assert not two[two["seed"] == 43].set_index("weight")["NDCG@10"].equals(one.set_index("weight")["NDCG@10"])
    means = two.groupby("weight")["NDCG@10"].mean()
    assert two["weight"].iloc[0] == means.idxmax() and two["seed"].iloc[:2].tolist() == [42, 43]


def test_a_kd_temperature_sweep_runs_the_teacher_over_the_training_prefixes_once(tiny_prepared, tmp_path,
                                                                                  monkeypatch):
    """Soft labels' T swept at top-K: the teacher's cache is built once for the whole grid (at
    every T of it) and each point reads it, not a teacher pass per point; a pipeline cache that
    holds the grid's temperatures is read as it is, one that lacks one is not."""
    import shutil

    import recpress_utils.runs as runs
    from recpress_utils.train import TrainConfig

    config, out = profile_with_a_gru4rec_teacher(tiny_prepared, tmp_path,
                                                 {"soft_gru": {"method": "soft_labels", "teacher": "gru4rec"}},
                                                 distill={"top_k": 5})
    built, in_run = [], []
    monkeypatch.setattr(sweep_mod, "teacher_cache_run",
                        lambda *a, **k: built.append(a[6:8]) or runs.teacher_cache_run(*a, **k))
    original = runs.build_teacher_cache
    monkeypatch.setattr(runs, "build_teacher_cache", lambda *a, **k: in_run.append(1) or original(*a, **k))
    table = sweep_mod.kd_sweep(config, "soft_gru", {"temperature": [1.0, 3.0]}, size="e16")
    assert built == [(5, [1.0, 3.0])] and not in_run and len(table) == 2
    assert table.loc[table["temperature"] == 1.0, "MRR@20"].item() != table.loc[table["temperature"] == 3.0,
                                                                                 "MRR@20"].item()
    own = next((out / "sweeps" / "kd_soft_gru_e16").glob("teacher_cache_*.pt"))
    pipeline = out / "teacher_cache" / "gru4rec_s42.pt"
    pipeline.parent.mkdir()
    shutil.copy(own, pipeline)
    teacher = [{**t, "checkpoint": str(REPO_ROOT / t["checkpoint"])} for t in stage_params(
        config, "09_kd", {"size": "e16", "method": "soft_gru", "seed": 42})["teachers"]]
    assert sweep_mod.sweep_teacher_caches([str(pipeline)], teacher, [3.0], tmp_path, out / "prepared",
                                          TrainConfig(), 42, 1, 5) == [str(pipeline)]
    assert sweep_mod.sweep_teacher_caches([str(pipeline)], teacher, [1.0, 2.0], tmp_path / "w", out / "prepared",
                                          TrainConfig(epochs=1, batch_size=128, device="cpu"), 42, 1, 5) != [
        str(pipeline)] and len(built) == 2
    assert sweep_mod.sweep_teacher_caches([""], teacher, [1.0], tmp_path, out / "prepared", TrainConfig(), 42, 1,
                                          5) == [""]


def test_a_sweep_run_again_reuses_finished_points_and_refits_a_changed_one(tiny_prepared, tmp_path, monkeypatch):
    """Each point trains in its own folder beside the prepared data and leaves its scores there:
    the same sweep run again (after a kill, say) fits nothing it finished, and a point whose
    training settings changed is a new folder, fitted anew."""
    import shutil

    prepared = tmp_path / "synthetic" / "prepared"
    shutil.copytree(tiny_prepared, prepared)
    config = load_config(REPO_ROOT / "config" / "tiny.yaml", {"train": {"epochs": 1}})
    first = sweep_mod.sweep(config, "gru4rec", {"train.lr": [0.003]}, prepared_dir=prepared)
    folders = list((prepared.parent / "sweeps" / "gru4rec").iterdir())
    assert len(folders) == 1 and (folders[0] / "scores.json").exists()
    assert not (folders[0] / "checkpoint.pt").exists(), "the checkpoint goes once the scores are safe"
    fits = []
    original = sweep_mod.fit
    monkeypatch.setattr(sweep_mod, "fit", lambda *a, **k: fits.append(k) or original(*a, **k))
    again = sweep_mod.sweep(config, "gru4rec", {"train.lr": [0.003]}, prepared_dir=prepared)
    pd.testing.assert_frame_equal(first, again)
    assert fits == []
    sweep_mod.sweep(config, "gru4rec", {"train.lr": [0.01]}, prepared_dir=prepared)
    assert len(fits) == 1 and fits[0]["checkpoint"].name == "checkpoint.pt"
    assert len(list((prepared.parent / "sweeps" / "gru4rec").iterdir())) == 2


def test_a_kd_sweep_point_at_the_profiles_settings_reads_the_pipelines_run_instead_of_retraining(
        tiny_prepared, tmp_path, monkeypatch):
    """The pipeline's run of the method (same size, seed, student, teachers and training settings,
    the profile's settings with the method's defaults filled in) already holds the point's
    validation scores: its best epoch's history row, equal to what the sweep's own fit gives. Any
    other setting, or another seed, is fitted."""
    import dataclasses
    import shutil

    import recpress_utils.runs as runs

    config, out = profile_with_a_gru4rec_teacher(tiny_prepared, tmp_path,
                                                 {"rd_gru": {"method": "ranking", "teacher": "gru4rec"}})
    jobs = []
    original = runs.kd_fit
    monkeypatch.setattr(runs, "kd_fit", lambda p, job, *a, **k: jobs.append(job) or original(p, job, *a, **k))
    trained = sweep_mod.kd_sweep(config, "rd_gru", {"weight": [1.0]}, size="e16")  # no pipeline run yet: fitted
    assert len(jobs) == 1
    first = jobs[0]
    params = stage_params(config, "09_kd", {"size": "e16", "method": "rd_gru", "seed": 42})
    run_dir = REPO_ROOT / params["run_dir"]
    # the pipeline's run, as the profile gives it: no weight set, the method's default (1.0) applies
    runs.kd_run(out / "prepared", run_dir, dataclasses.replace(first, method_settings=params["method_spec"]),
                progress=False)
    shutil.rmtree(out / "sweeps")
    jobs.clear()
    table = sweep_mod.kd_sweep(config, "rd_gru", {"weight": [1.0, 3.0]}, size="e16")
    assert [job.method_settings["settings"]["weight"] for job in jobs] == [3.0]
    row = table.loc[table["weight"] == 1.0].iloc[0]
    for metric in ("MRR@20", "NDCG@10", "HR@20"):
        assert row[metric] == pytest.approx(trained[metric].item(), abs=1e-9)
    assert list(table.columns[:3]) == ["size", "seed", "weight"]
    assert sweep_mod.pipeline_scores(run_dir, first) is not None
    assert sweep_mod.pipeline_scores(run_dir, dataclasses.replace(first, seed=43)) is None
    assert sweep_mod.pipeline_scores(run_dir, jobs[0]) is None  # weight 3.0
    assert sweep_mod.pipeline_scores(tmp_path / "none", first) is None
