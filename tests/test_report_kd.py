"""The toolkit's verdicts (recpress_utils.report.kd) and its config (recpress_utils.config.kd_*):
a verdict can come out helps, no effect or hurts, and a bad method entry fails before any job."""

from __future__ import annotations

import pandas as pd
import pytest

from recpress_utils import config as rc
from recpress_utils.report.kd import (best_against_control, budget_note, method_table, pareto_points, seed_varies,
                                      teacher_reference, verdict)

SEEDS = (42, 43, 44)


def kd_frame(shifts: dict[str, tuple[float, ...]], control=(0.30, 0.32, 0.31), size="e64", params=1000) -> pd.DataFrame:
    rows = [{"size": size, "method": "control", "kind": "none", "teachers": "", "seed": s, "MRR@20": v,
             "train_seconds": 100.0, "n_parameters": params} for s, v in zip(SEEDS, control)]
    for method, deltas in shifts.items():
        rows += [{"size": size, "method": method, "kind": method, "teachers": "mixed_attention-n2v", "seed": s,
                  "MRR@20": c + d, "train_seconds": 150.0, "n_parameters": params}
                 for s, c, d in zip(SEEDS, control, deltas)]
    return pd.DataFrame(rows)


def test_each_verdict_can_come_out() -> None:
    kd = kd_frame({"up": (0.010, 0.012, 0.011), "down": (-0.010, -0.009, -0.012), "flat": (0.01, -0.012, 0.001)})
    table = method_table(kd, "MRR@20", teacher_mean=0.40).set_index("method")
    assert table.loc["up", "verdict"] == "helps"
    assert table.loc["down", "verdict"] == "hurts"
    assert table.loc["flat", "verdict"] == "no effect"
    assert table.loc["no KD (control)", "verdict"] == "reference"
    assert table.loc["up", "x control time"] == "1.50"
    assert table.loc["no KD (control)", "% of teacher"] == "77.5"  # 0.31 / 0.40
    assert list(table.index)[0] == "no KD (control)"


def test_the_step_cost_benchmark_replaces_the_wall_clock_ratio_where_it_timed_a_size() -> None:
    """Runs timed on a shared machine give 1.50 for "up"; the benchmark's 1.20 wins for the size it
    timed (a method it did not time shows nothing), and the line above the table names the source."""
    from recpress_utils.report.kd import cost_source

    kd = pd.concat([kd_frame({"up": (0.01, 0.01, 0.01), "down": (-0.01, -0.01, -0.01)}),
                    kd_frame({"up": (0.01, 0.01, 0.01)}, size="e16")])
    cost = pd.DataFrame({"size": "e64", "method": ["control", "up"], "x_control": [1.0, 1.2], "steps": 20,
                         "rounds": 3, "batch_size": 256, "threads": 1})
    table = method_table(kd, "MRR@20", cost=cost).set_index(["size", "method"])["x control time"]
    assert table[("e64", "up")] == "1.20" and table[("e64", "no KD (control)")] == "1.00"
    assert table[("e64", "down")] == "" and table[("e16", "up")] == "1.50"
    source = cost_source(kd, cost)
    assert "e64: seconds per training step" in source and "20 steps of 256 x 3 rounds" in source
    assert "e16: the runs' wall-clock training seconds" in source
    assert "e64: the runs' wall-clock" in cost_source(kd, None)
    assert "e64: process CPU seconds per training step" in cost_source(kd, cost.assign(clock="cpu"))


def test_no_interval_no_verdict() -> None:
    kd = kd_frame({"up": (0.01,)}).query("seed == 42 or method == 'control'")
    assert method_table(kd, "MRR@20").set_index("method").loc["up", "verdict"] == "one seed: no verdict"
    assert verdict(pd.Series([], dtype=float).to_numpy()) == "no shared seed"
    two = kd_frame({"up": (0.05, 0.06)}).query("seed != 44")
    assert method_table(two, "MRR@20").set_index("method").loc["up", "verdict"] == "2 seeds: no verdict"
    assert best_against_control(two, "MRR@20")["verdict"] == "2 seeds: no verdict"


def test_best_against_control_and_pareto_points() -> None:
    kd = pd.concat([kd_frame({"a": (0.01, 0.01, 0.02), "b": (0.03, 0.02, 0.025)}),
                    kd_frame({"a": (0.04, 0.05, 0.045)}, size="e16", params=100)])
    best = best_against_control(kd, "MRR@20")
    assert (best["method"], best["size"], best["verdict"]) == ("a", "e16", "helps")
    assert best["ci"][0] == pytest.approx(0.045)
    points = pareto_points(kd, "MRR@20", teacher_mean=0.31).set_index(["method", "size"])
    assert points.loc[("control", "e64"), "kept"] == pytest.approx(100.0)
    assert points.loc[("a", "e16"), "parameters"] == 100
    assert best_against_control(kd_frame({}), "MRR@20") is None
    latency = {"sizes": {"e16": {"batched": {"median": 0.5}}}}
    timed = pareto_points(kd, "MRR@20", 0.31, latency).set_index(["method", "size"])
    assert timed.loc[("a", "e16"), "s_per_1000"] == 0.5 and pd.isna(timed.loc[("a", "e64"), "s_per_1000"])


def test_each_curve_of_the_compression_figure_runs_along_its_panels_axis() -> None:
    """A deeper student can have fewer parameters yet answer slower: each panel draws a method's
    sizes in the order of its own x, and names the sizes on the control's curve."""
    import matplotlib

    matplotlib.use("Agg")
    from recpress_utils.report.kd import pareto_figure

    kd = pd.concat([kd_frame({"a": (0.01, 0.01, 0.02)}, params=300),
                    kd_frame({"a": (0.04, 0.05, 0.045)}, size="e16", params=100),
                    kd_frame({"a": (0.02, 0.03, 0.02)}, size="e32b2", params=200)])
    latency = {"threads": 1, "sizes": {"e16": {"batched": {"median": 0.4}}, "e32b2": {"batched": {"median": 0.6}},
                                       "e64": {"batched": {"median": 0.5}}}}
    fig = pareto_figure(kd, "MRR@20", 0.31, "the teacher", latency)
    by_parameters, by_latency = fig.axes
    for ax in (by_parameters, by_latency):
        for line in ax.get_lines()[:-1]:  # the last line is the 100 % reference
            assert list(line.get_xdata()) == sorted(line.get_xdata())
    assert [t.get_text() for t in by_latency.texts] == ["e16", "e64", "e32b2"]


def test_the_settings_table_says_whether_the_runs_use_the_validation_sweeps_best(tmp_path) -> None:
    """A method whose runs hold the sweep's best point is "chosen on validation"; one left at a
    default the sweep beat names the better value, and a best value at the grid's edge is named as
    such; one without a sweep says so. A default the
    config never wrote (RD's weight 1) is read from the method's constructor, and 1 matches 1.0."""
    from recpress_utils.report.kd import load_sweeps, settings_table

    kd = kd_frame({"soft": (0.01,) * 3, "rd": (0.0,) * 3, "hint": (0.0,) * 3}).assign(settings="{}")
    kd["kind"] = kd["method"].map({"control": "none", "soft": "soft_labels", "rd": "ranking", "hint": "hint"})
    kd.loc[kd["method"] == "soft", "settings"] = '{"temperature": 0.5}'
    pd.DataFrame({"size": "e16", "seed": 42, "temperature": [1.0, 0.5], "MRR@20": [0.21, 0.20],
                  "seconds": 9.0}).to_csv(tmp_path / "kd_soft.csv", index=False)
    pd.DataFrame({"size": "e16", "seed": 42, "weight": [1.0, 0.1, 10.0], "MRR@20": [0.17, 0.16, 0.15],
                  "seconds": 9.0}).to_csv(tmp_path / "kd_rd.csv", index=False)
    sweeps = load_sweeps(tmp_path)
    assert set(sweeps) == {"soft", "rd"} and load_sweeps(tmp_path / "none") == {}
    table = settings_table(kd, sweeps, "MRR@20").set_index("method")
    assert list(table.index) == ["hint", "rd", "soft"]
    assert table.loc["rd", "chosen on validation"] == "yes"
    assert table.loc["rd", "settings of the runs"] == "default hard_weight 1, weight 1"
    assert table.loc["rd", "validation MRR@20 of the sweep"] == (
        "size e16, seed 42: weight 0.1: 0.1600; weight 1: 0.1700; weight 10: 0.1500")
    assert table.loc["soft", "chosen on validation"] == (
        "no: best temperature 1 (at the grid's edge: temperature its highest)")
    assert table.loc["soft", "settings of the runs"] == "temperature 0.5; default hard_weight 0, weight 1"
    assert table.loc["hint", "chosen on validation"] == "not swept"
    every = kd.assign(settings='{"hard_weight": 1, "weight": 0.1}')  # nothing left at a default
    assert settings_table(every, sweeps, "MRR@20").set_index("method").loc["rd", "settings of the runs"] == (
        "hard_weight 1, weight 0.1")


def test_a_sweep_at_two_seeds_shows_each_points_mean_and_marks_a_point_run_at_one(tmp_path) -> None:
    """A sweep whose points ran at seeds 42 and 43 shows each point's mean over them, and a point
    of an earlier one-seed round says so; the runs' weight 1 is the best mean (0.165), though
    weight 0.1 topped seed 42 alone."""
    from recpress_utils.grid import best_first
    from recpress_utils.report.kd import settings_table

    kd = kd_frame({"rd": (0.0,) * 3}).assign(settings='{"weight": 1}')
    kd["kind"] = kd["method"].map({"control": "none", "rd": "ranking"})
    sweep = pd.DataFrame({"size": "e16", "seed": [42, 42, 42, 43, 43], "weight": [0.1, 1.0, 10.0, 0.1, 1.0],
                          "MRR@20": [0.18, 0.17, 0.15, 0.14, 0.16], "seconds": 9.0})
    table = settings_table(kd, {"rd": best_first(sweep, ["size", "weight"], "MRR@20")}, "MRR@20").set_index("method")
    assert table.loc["rd", "validation MRR@20 of the sweep"] == (
        "size e16, mean over seeds 42, 43: weight 0.1: 0.1600; weight 1: 0.1650; weight 10: 0.1500 (seed 42 only)")
    assert table.loc["rd", "chosen on validation"] == "yes"


def test_size_latency_times_one_student_per_size(tiny_prepared, tmp_path) -> None:
    import json

    from recpress_utils.latency import size_latency
    from recpress_utils.runs import KDJob, kd_run
    from recpress_utils.train import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=128, device="cpu")
    runs = {}
    for size, dim in (("e8", 8), ("e32", 32)):
        kd_run(tiny_prepared, tmp_path / size, KDJob(None, None, [], {"emb_dim": dim, "qkv_dim": dim, "proj_dim": dim},
                                                     {"loss": "cross_entropy"}, cfg, seed=1, threads=1), progress=False)
        runs[size] = tmp_path / size
    out = size_latency(tiny_prepared, runs, tmp_path / "latency.json", threads=1, repeats=2, n_requests=50)
    assert json.loads((tmp_path / "latency.json").read_text())["sizes"].keys() == {"e8", "e32"}
    assert out["sizes"]["e8"]["parameters"] < out["sizes"]["e32"]["parameters"]
    assert all(row["batched"]["median"] > 0 for row in out["sizes"].values())


def _tiny(**kd) -> dict:
    return rc.load_config("config/tiny.yaml", {"kd": kd})


def test_the_tiny_profile_runs_every_method_at_three_sizes_of_two_depths() -> None:
    from recpress_utils.distill import METHODS

    cfg = rc.load_config("config/tiny.yaml")
    runs = rc.kd_runs(cfg)
    kinds = {entry["method"] for entry in cfg["kd"]["methods"].values()}
    assert kinds == set(METHODS)
    assert len(runs) == 3 * (len(cfg["kd"]["methods"]) + 1) and "kd/e16/control_s42" in runs
    assert rc.kd_student(cfg, "e16")["emb_dim"] == 16
    deep = rc.kd_student(cfg, "e32b2")
    assert deep["emb_dim"] == 32 and deep["n_blocks"] == 2 and "kd/e32b2/attention_s42" in runs
    born = rc.kd_teachers(cfg, "born_again", "e16", 42)
    assert born[0]["checkpoint"].endswith("kd/e16/control_s42/model.pt") and born[0]["model_kwargs"]["emb_dim"] == 16
    multi = rc.kd_teachers(cfg, "multi", "e64", 42)
    assert [t["model"] for t in multi] == ["mixed_attention", "sasrec", "gru4rec"]
    assert multi[0]["neighbors_path"].endswith("kg/neighbors.pt") and multi[1]["neighbors_path"] == ""
    record = rc.teacher_record(cfg, "mixed_attention-n2v", 42)  # the record the teacher-cache rule builds from
    assert {key: multi[0][key] for key in record} == record and record["checkpoint"].endswith("runs/mixed_attention-n2v_s42/model.pt")
    assert rc.kd_online(cfg, "dml") and not rc.kd_online(cfg, "rd") and not rc.kd_online(cfg, "control")


@pytest.mark.parametrize("methods,message", [
    ({"x": {"method": "telepathy"}}, "unknown method 'telepathy'"),
    ({"x": {"method": "ranking", "settings": {"topk": 3}}}, "unknown setting.*topk.*accepted: hard_weight"),
    ({"x": {"method": "soft_labels", "teacher": "lightgcn"}}, "teacher 'lightgcn' is no model"),
])
def test_a_bad_method_entry_fails_naming_it(methods, message) -> None:
    with pytest.raises(ValueError, match=message):
        rc.kd_runs(_tiny(methods=methods))


def test_no_methods_no_runs_and_control_is_reserved() -> None:
    assert rc.kd_runs(rc.load_config()) == []
    with pytest.raises(ValueError, match="kd/methods"):
        _tiny(methods={"control": {"method": "hint"}})


def _one_teacher(shared_train: dict | None = None, **kd) -> dict:
    """tiny with three seeds, the paper's models at one (the real-data profiles' budget rule) and the
    toolkit's students at all three, from the teachers of ``kd.teacher_seed``."""
    return rc.load_config("config/tiny.yaml", {"seeds": [42, 43, 44], "paper_seeds": [42], "train": shared_train or {},
                                                "distill": {"top_k": 20}, "kd": kd})


def test_one_teacher_seed_teaches_every_student_seed() -> None:
    cfg = _one_teacher(seeds=[42, 43, 44], teacher_seed=42, train={"epochs": 2})
    runs = rc.kd_runs(cfg)
    assert {"kd/e16/control_s43", "kd/e64/rd_s44"} <= set(runs)
    assert len(runs) == 3 * len(cfg["kd"]["sizes"]) * (len(cfg["kd"]["methods"]) + 1)
    rd = rc.kd_teachers(cfg, "rd", "e64", 44)
    assert rd[0]["checkpoint"].endswith("runs/mixed_attention-n2v_s42/model.pt")
    assert [t["checkpoint"].split("/")[-2] for t in rc.kd_teachers(cfg, "multi", "e64", 43)] == \
        ["mixed_attention-n2v_s42", "sasrec_s42", "gru4rec_s42"]
    born = rc.kd_teachers(cfg, "born_again", "e16", 44)  # the same-size control keeps the student's seed
    assert born[0]["checkpoint"].endswith("kd/e16/control_s44/model.pt")
    params = rc.stage_params(cfg, "09_kd", {"size": "e16", "method": "rd", "seed": 44})
    assert params["teachers"][0]["checkpoint"] == rd[0]["checkpoint"]
    assert params["teacher_caches"][0].endswith("teacher_cache/mixed_attention-n2v_s42.pt"), "one cache for every seed"
    assert params["train"]["epochs"] == 2 and params["train"]["lr"] == cfg["train"]["lr"], "kd.train over the student's"
    assert rc.stage_params(_one_teacher(), "09_kd", {"method": "rd"})["seed"] == 42, "kd.seeds unset: the paper's seeds"


@pytest.mark.parametrize("kd,message", [
    ({"seeds": [42, 43]}, r"kd.seeds \[43\] are not among the paper's seeds \[42\]: no teacher"),
    ({"seeds": [42, 43], "teacher_seed": 43}, r"kd.teacher_seed 43 is not among the paper's seeds \[42\]"),
])
def test_student_seeds_without_a_trained_teacher_fail_before_any_job(kd, message) -> None:
    with pytest.raises(ValueError, match=message):
        rc.kd_runs(_one_teacher(**kd))


def test_a_window_budget_must_stay_inside_the_teacher_cache() -> None:
    """The cache holds the students' windows: all of them, or, under train.max_windows, the teacher
    seed's sample; a toolkit budget must draw from what it holds."""
    assert rc.kd_runs(_one_teacher(seeds=[42, 43], teacher_seed=42, train={"max_windows": 100}))  # every window cached
    with pytest.raises(ValueError, match="holds the prefixes of seed 42's sample"):
        rc.kd_runs(_one_teacher(shared_train={"max_windows": 100}, seeds=[42, 43], teacher_seed=42))
    with pytest.raises(ValueError, match="differs from the distilled students'"):
        rc.kd_runs(_one_teacher(shared_train={"max_windows": 100}, train={"max_windows": 50}))


def test_the_page_says_what_a_seed_varies_and_divides_by_the_teacher_it_used() -> None:
    runs = pd.DataFrame({"group": ["teacher"] * 3 + ["other"], "seed": [42, 43, 44, 42], "MRR@20": [0.3, 0.4, 0.5, 0.9]})
    assert teacher_reference(runs, "teacher", "MRR@20", {"kd": {}})[0] == pytest.approx(0.4)
    assert teacher_reference(runs, "teacher", "MRR@20", {"kd": {"teacher_seed": 43}})[0] == pytest.approx(0.4)
    assert teacher_reference(runs, "teacher", "MRR@20", {"kd": {"teacher_seed": 44}})[0] == pytest.approx(0.5)
    # The teacher the students learnt from, as their runs recorded it, wins over a digest row that a
    # retrained teacher differs from; runs that another teacher taught, or that recorded none, do not count.
    kd = kd_frame({"soft": (0.01, 0.01, 0.01)})
    kd["teachers"] = kd["teachers"].replace("mixed_attention-n2v", "teacher")
    kd["teacher:MRR@20"] = [None] * 3 + [0.45] * 3
    value, source = teacher_reference(runs, "teacher", "MRR@20", {"kd": {"teacher_seed": 44}}, kd)
    assert value == pytest.approx(0.45) and "recorded" in source
    assert teacher_reference(runs, "other", "MRR@20", {"kd": {}}, kd)[0] == pytest.approx(0.9)
    assert "Node2Vec walks" in seed_varies({})
    one = seed_varies({"kd": {"teacher_seed": 42}})
    assert "teachers trained at seed 42" in one and "Node2Vec" not in one

    assert budget_note({"kd": {}}) is None and budget_note({}) is None
    assert "kd.train: epochs 10" in budget_note({"kd": {"train": {"epochs": 10}}})


def test_longer_training_puts_each_budgets_verdict_beside_the_other() -> None:
    """A method that helps at the toolkit's budget only because the control was still learning: trained
    longer, the control catches up and the verdict turns to no effect, while a method that makes a
    better student keeps its verdict; the rows name the cap the runs recorded and their best epochs."""
    from recpress_utils.report.kd import longer_training, verdict_changes

    budget = kd_frame({"fast": (0.010, 0.012, 0.011), "better": (0.020, 0.021, 0.019)}).assign(best_epoch=10)
    longer = kd_frame({"fast": (0.001, -0.002, 0.0005), "better": (0.015, 0.016, 0.014)},
                      control=(0.34, 0.35, 0.345)).assign(best_epoch=[22, 25, 19] * 3, epochs_cap=40, patience=3)
    longer["teacher:MRR@20"] = [None] * 3 + [0.41] * 6  # the control learns from no teacher
    table = longer_training(budget, longer, "MRR@20", budget_epochs=10)
    assert [(m, t[:2]) for m, t in zip(table["method"], table["training"])] == [
        ("no KD (control)", "10"), ("no KD (control)", "up"), ("better", "10"), ("better", "up"),
        ("fast", "10"), ("fast", "up")]
    rows = table.set_index(["method", "training"])
    longer_label = "up to 40 epochs, early-stopped (patience 3)"
    assert rows.loc[("fast", "10 epochs (kd.train)"), "verdict"] == "helps"
    assert rows.loc[("fast", longer_label), "verdict"] == "no effect"
    assert rows.loc[("better", longer_label), "verdict"] == "helps"
    assert rows.loc[("no KD (control)", longer_label), "best epoch per seed"] == "22, 25, 19"
    assert rows.loc[("no KD (control)", longer_label), "metric [95 % CI]"].startswith("0.3450 [")
    assert rows.loc[("fast", longer_label), "teacher, as recorded"] == "0.4100"
    assert rows.loc[("fast", "10 epochs (kd.train)"), "teacher, as recorded"] == ""  # none recorded
    assert rows.loc[("no KD (control)", longer_label), "teacher, as recorded"] == ""
    assert verdict_changes(table) == "the longer budget changes the verdict of fast at e64: helps -> no effect"
    same = longer_training(budget, budget.assign(epochs_cap=10, patience=3), "MRR@20", budget_epochs=10)
    assert verdict_changes(same) == "the longer budget changes no verdict"


def test_longer_training_shows_settings_that_differ_between_the_budgets() -> None:
    """A method swept again after its longer runs: its 10-epoch runs use the new weight, the longer
    ones the old; the table shows each budget's settings and the verdict line says the change is
    not the budget's alone, while a method at the same settings in both is named plainly."""
    from recpress_utils.report.kd import longer_training, settings_text, verdict_changes

    budget = kd_frame({"swept": (0.010, 0.012, 0.011), "kept": (0.010, 0.012, 0.011)}).assign(best_epoch=10)
    budget["settings"] = ["{}"] * 3 + ['{"weight": 0.003}'] * 3 + ['{"temperature": 0.5}'] * 3
    longer = kd_frame({"swept": (0.001, -0.002, 0.0005), "kept": (0.001, -0.002, 0.0005)}).assign(
        best_epoch=20, epochs_cap=30, patience=3)
    longer["settings"] = ["{}"] * 3 + ['{"weight": 0.01}'] * 3 + ['{"temperature": 0.5}'] * 3
    table = longer_training(budget, longer, "MRR@20", budget_epochs=10).set_index(["method", "training"])
    later = "up to 30 epochs, early-stopped (patience 3)"
    assert table.loc[("swept", "10 epochs (kd.train)"), "settings"] == "weight 0.003"
    assert table.loc[("swept", later), "settings"] == "weight 0.01"
    assert table.loc[("no KD (control)", later), "settings"] == "defaults"
    assert verdict_changes(table.reset_index()) == (
        "the longer budget changes the verdict of kept at e64: helps -> no effect; "
        "swept at e64: helps -> no effect (at other settings)")
    assert settings_text(longer.iloc[[3, 6]]) == "weight 0.01 / temperature 0.5"  # runs that disagree
    assert settings_text(longer.drop(columns="settings")) == "defaults"
