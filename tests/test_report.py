"""Report tables and claim verdicts, on fake run folders with numbers chosen by hand."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from recpress_utils.report import claims, figures, provenance, results, tables
from recpress_utils.paths import REPO_ROOT
from recpress_utils.names import PAPER_GROUPS
from recpress_utils.report.results import METRICS

SEEDS = (42, 43, 44)


def level(value: float, **overrides: float) -> dict[str, float]:
    """Every test metric at ``value``, some overridden (``NDCG_1=0.2`` sets NDCG@1)."""
    out = {m: value for m in METRICS}
    out.update({k.replace("_", "@"): v for k, v in overrides.items()})
    return out


PEERS = {"popularity": ("popularity", "Popularity (training counts)"),
         "sasrec": ("sasrec", "SASRec (full CE)"), "sasrec_bce": ("sasrec", "SASRec (BCE, 1 negative)"),
         "gru4rec": ("gru4rec", "GRU4Rec (full CE)"), "bert4rec": ("bert4rec", "BERT4Rec (masked items)")}


def write_run(root: Path, group: str, seed: int, test: dict[str, float],
              history: list[dict] | None = None) -> Path:
    """One ``runs/<group>_s<seed>/metrics.json`` in the layout of ``recpress_utils.runs``."""
    if group in PEERS:
        model, display = PEERS[group]
        run_dir = root / "runs" / f"{group}_s{seed}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps({
            "model": model, "display_name": display, "node2vec": False, "seed": seed, "test": test,
            "spec": {"loss": "counts" if model == "popularity" else "cross_entropy"},
            "history": [], "best_epoch": 0, "epochs_run": 0}))
        return run_dir
    model = "student" if group.startswith("student") else group.removesuffix("-n2v")
    temperature = float(group.removeprefix("student-T")) if group.startswith("student-T") else None
    history = history or [{"epoch": 1, "train_loss": 1.0, "epoch_seconds": 1.0, **test}]
    metrics = {
        "model": model, "display_name": PAPER_GROUPS.get(group, f"Student (T = {temperature:g})"
                                                         if temperature is not None else "Student (hard labels)"),
        "node2vec": group.endswith("-n2v"), "seed": seed, "test": test,
        "test_rest": {k: v / 2 for k, v in test.items()}, "history": history,
        "best_epoch": len(history), "epochs_run": len(history), "train_seconds": 10.0,
        "seconds_per_epoch": 10.0 / len(history), "n_parameters": 1000,
    }
    if temperature is not None:
        metrics.update(temperature=temperature, hard_weight=0.0)
    run_dir = root / "runs" / f"{group}_s{seed}"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def write_groups(root: Path, groups: dict[str, list[dict[str, float]]]) -> Path:
    """Runs for each group, one per seed: ``groups[g][i]`` is the test metrics of seed ``SEEDS[i]``."""
    for group, per_seed in groups.items():
        for seed, test in zip(SEEDS, per_seed):
            write_run(root, group, seed, test)
    return root


def shifted(base: list[float], deltas: list[float], **overrides: list[float]) -> list[dict[str, float]]:
    """Per-seed metrics ``base + delta`` on every metric, or per-metric deltas given by name."""
    return [level(b + d, **{k: b + v[i] for k, v in overrides.items()})
            for i, (b, d) in enumerate(zip(base, deltas))]


BASE = [0.30, 0.32, 0.31]


# --------------------------------------------------------------------------- statistics
def test_mean_ci_is_the_student_t_interval():
    x = [0.1, 0.2, 0.4]
    half = stats.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
    mean, low, high = results.mean_ci(x)
    assert mean == pytest.approx(np.mean(x))
    assert (low, high) == pytest.approx((np.mean(x) - half, np.mean(x) + half))
    half90 = stats.t.ppf(0.95, 2) * np.std(x, ddof=1) / math.sqrt(3)
    assert results.mean_ci(x, 0.90)[2] == pytest.approx(np.mean(x) + half90)


def test_mean_ci_one_value_is_degenerate_and_nan_dropped():
    assert results.mean_ci([0.25]) == (0.25, 0.25, 0.25)
    assert results.mean_ci([0.25, float("nan")]) == (0.25, 0.25, 0.25)
    assert all(math.isnan(v) for v in results.mean_ci([]))


def test_aggregate_and_format(tmp_path):
    write_groups(tmp_path, {"baseline": [level(0.1), level(0.2), level(0.4)]})
    write_run(tmp_path, "mixed_attention", 42, level(0.5))
    agg = results.aggregate(results.load_runs(tmp_path), ["NDCG@10", "MAP@10"])
    mean, low, high = results.mean_ci([0.1, 0.2, 0.4])
    assert agg.loc["baseline", ("NDCG@10", "mean")] == pytest.approx(mean)
    assert agg.loc["baseline", ("MAP@10", "low")] == pytest.approx(low)
    assert agg.loc["baseline", ("MAP@10", "n")] == 3 and agg.loc["mixed_attention", ("MAP@10", "n")] == 1
    text = results.format_mean_ci(agg, digits=3)
    assert text.loc["baseline", "NDCG@10"] == f"{mean:.3f} ± {(high - low) / 2:.3f}"
    assert text.loc["mixed_attention", "NDCG@10"] == "0.500"  # one seed: no "± 0"
    assert text["n"].tolist() == ["3", "1"]


# --------------------------------------------------------------------------- runs and tables
def test_load_runs_columns(tmp_path):
    write_run(tmp_path, "baseline", 42, level(0.3))
    write_run(tmp_path, "student-T0.5", 43, level(0.2))
    runs = results.load_runs(tmp_path / "runs").set_index("run")
    assert results.load_runs(tmp_path).shape == runs.reset_index().shape  # dataset folder works too
    assert runs.loc["student-T0.5_s43", "group"] == "student-T0.5"
    assert runs.loc["student-T0.5_s43", "temperature"] == 0.5 and math.isnan(runs.loc["baseline_s42", "temperature"])
    assert runs.loc["baseline_s42", "rest:NDCG@10"] == pytest.approx(0.15)
    for col in ("model", "display_name", "node2vec", "seed", *METRICS, "best_epoch", "epochs_run",
                "seconds_per_epoch", "train_seconds", "n_parameters"):
        assert col in runs.columns


def test_load_runs_without_runs_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run found"):
        results.load_runs(tmp_path)


def test_load_runs_on_the_real_results():
    real = REPO_ROOT / "results" / "synthetic" / "runs"
    if not (real.parent / "report" / "report.ipynb").exists():
        pytest.skip("the default pipeline has not completed here")
    runs = results.load_runs(real)
    assert {"baseline", "baseline-n2v", "mixed_attention", "mixed_attention-n2v", "student", "student-T0.5",
            "student-T1", "student-T2", "student-T5"} <= set(runs["group"])


def test_paper_table_tables_2_3(tmp_path):
    write_groups(tmp_path, {"baseline": [level(0.30), level(0.32), level(0.34)]})
    table = tables.paper_table(results.load_runs(tmp_path), "tables_2_3", digits=4)
    assert list(table.index) == list(PAPER_GROUPS.values())
    row = table.loc["Baseline"]
    mean, low, high = results.mean_ci([0.30, 0.32, 0.34])
    assert row[("MAP@10", "paper")] == 0.2766
    assert row[("MAP@10", "ours")] == round(mean, 4) == 0.32
    assert (row[("MAP@10", "CI low")], row[("MAP@10", "CI high")]) == (round(low, 4), round(high, 4))
    assert row[("MAP@10", "ours - paper")] == pytest.approx(0.32 - 0.2766, abs=1e-9)
    assert row[("n", "")] == 3 and row[("note", "")] == ""
    missing = table.loc["Mixed Attention + Node2Vec"]
    assert missing[("NDCG@10", "paper")] == 0.3794 and math.isnan(missing[("NDCG@10", "ours")])
    assert missing[("n", "")] == 0
    assert [c for c in table.columns.get_level_values(0).unique()] == [
        "MAP@1", "MAP@10", "MAP@100", "NDCG@1", "NDCG@10", "NDCG@100", "n", "note"]


def test_paper_table_tables_4_5_with_a_row_beyond_the_paper(tmp_path):
    write_groups(tmp_path, {"student-T1": [level(0.33333333)] * 2, "student": [level(0.2)] * 2})
    table = tables.paper_table(results.load_runs(tmp_path), "tables_4_5", digits=3)
    assert list(table.index) == ["0.5", "1", "2", "5", "Student (hard labels)"]
    assert table.loc["1", ("MAP@10", "paper")] == 0.325 and table.loc["1", ("NDCG@10", "ours")] == 0.333
    extra = table.loc["Student (hard labels)"]
    assert extra[("note", "")] == "beyond the paper" and math.isnan(extra[("MAP@10", "paper")])
    assert extra[("MAP@10", "ours")] == 0.2
    rest = tables.paper_table(results.load_runs(tmp_path), "tables_4_5", digits=3, target="rest")
    assert rest.loc["1", ("NDCG@10", "ours")] == 0.167


def test_the_compact_form_has_one_narrow_row_per_model_and_metric(tmp_path):
    write_groups(tmp_path, {"student-T1": [level(0.30), level(0.32), level(0.34)], "student": [level(0.2)]})
    table = tables.paper_table(results.load_runs(tmp_path), "tables_4_5", digits=4)
    out = tables.compact(table)
    assert list(out.columns) == ["ours", "95 % CI", "paper", "ours − paper", "seeds"]
    assert len(out) == len(table) * 6 and out.index.names == ["T", "metric"]
    mean, low, high = results.mean_ci([0.30, 0.32, 0.34])
    assert out.loc[("1", "MAP@10")].tolist() == ["0.3200", f"[{low:.4f}, {high:.4f}]", "0.3250", "-0.0050", 3]
    assert out.loc[("0.5", "MAP@10")].tolist() == ["not run", "—", "0.2727", "—", 0]
    hard = out.loc[("Student (hard labels)", "NDCG@10")]
    assert hard.tolist() == ["0.2000", "—", "—", "—", 1]  # one seed: no interval; beyond the paper: no figure
    assert "Student (hard labels)" not in tables.compact(table, paper_rows_only=True).index.get_level_values(0)


def test_curves_average_over_the_seeds_that_reached_an_epoch():
    import pandas as pd
    rows = [("baseline", 42, e, v) for e, v in enumerate([0.1, 0.2, 0.3], 1)]
    rows += [("baseline", 43, e, v) for e, v in enumerate([0.3, 0.4], 1)] + [("mixed_attention", 42, 1, 0.5)]
    table = pd.DataFrame(rows, columns=["group", "seed", "epoch", "NDCG@10"])
    out = figures.curves(table, ["baseline", "mixed_attention"], "NDCG@10")
    assert out["baseline"].tolist() == pytest.approx([0.2, 0.3, 0.3])
    assert out.attrs["n"]["baseline"].tolist() == [2, 2, 1]
    assert out.attrs["n"]["mixed_attention"].tolist() == [1, 0, 0]
    assert math.isnan(out.loc[2, "mixed_attention"])


# --------------------------------------------------------------------------- claims
def four_models(ma: list[dict], base: list[dict] | None = None, ma_n2v: list[dict] | None = None,
                base_n2v: list[dict] | None = None) -> dict[str, list[dict]]:
    base = base or shifted(BASE, [0, 0, 0])
    return {"baseline": base, "baseline-n2v": base_n2v or base, "mixed_attention": ma,
            "mixed_attention-n2v": ma_n2v or ma}


def runs_of(tmp_path: Path, groups: dict[str, list[dict]]):
    return results.load_runs(write_groups(tmp_path, groups))


def test_c1_reproduced(tmp_path):
    ma = shifted(BASE, [0.05, 0.06, 0.055])
    result = claims.claim_c1(runs_of(tmp_path, four_models(ma)))
    assert result["verdict"] == "reproduced" and "12/12" in result["evidence"]


def test_c1_not_reproduced_when_the_baseline_wins_one_metric(tmp_path):
    ma = shifted(BASE, [0.05, 0.06, 0.055], NDCG_1=[-0.03, -0.035, -0.032])
    result = claims.claim_c1(runs_of(tmp_path, four_models(ma)))
    assert result["verdict"] == "not reproduced" and "NDCG@1" in result["evidence"]


def test_a_refuted_claims_headline_quotes_the_interval_below_zero(tmp_path):
    """MAP@1's interval reaches lowest but contains 0; NDCG@10's lies below 0: the cell quotes NDCG@10."""
    ma = shifted(BASE, [0.05, 0.06, 0.055], MAP_1=[-0.08, 0.06, -0.05], NDCG_10=[-0.010, -0.011, -0.012])
    result = claims.claim_c1(runs_of(tmp_path, four_models(ma)))
    assert result["verdict"] == "not reproduced"
    assert "NDCG@10" in result["headline"] and "MAP@1 " not in result["headline"]
    assert "furthest below 0 NDCG@10" in result["evidence"]


def test_c1_inconclusive_when_noisy(tmp_path):
    ma = shifted(BASE, [0.02, -0.01, 0.015])
    assert claims.claim_c1(runs_of(tmp_path, four_models(ma)))["verdict"] == "inconclusive"


def test_c1_one_seed_is_inconclusive(tmp_path):
    groups = {g: v[:1] for g, v in four_models(shifted(BASE, [0.05, 0.06, 0.055])).items()}
    result = claims.claim_c1(runs_of(tmp_path, groups))
    assert result["verdict"] == "inconclusive" and "one seed" in result["evidence"]


def test_c1_two_clear_seeds_are_still_no_verdict(tmp_path):
    """Two seeds that both favour Mixed Attention by far: the rule is >= 3 paired seeds."""
    groups = {g: v[:2] for g, v in four_models(shifted(BASE, [0.05, 0.06, 0.055])).items()}
    result = claims.claim_c1(runs_of(tmp_path, groups))
    assert result["verdict"] == "inconclusive"
    assert "2 seeds, fewer than the 3" in result["evidence"] and result["headline"].startswith("2 seeds")


def test_c1_missing_model_is_inconclusive(tmp_path):
    result = claims.claim_c1(runs_of(tmp_path, {"baseline": shifted(BASE, [0, 0, 0])}))
    assert result["verdict"] == "inconclusive" and "no runs of" in result["evidence"]


@pytest.mark.parametrize("kg_delta, lstm_delta, verdict", [
    ([0.03, 0.035, 0.032], [0.01, -0.01, 0.0], "reproduced"),
    ([0.03, 0.035, 0.032], [0.03, 0.031, 0.029], "not reproduced"),    # Node2Vec clearly helps the LSTM
    ([-0.03, -0.035, -0.032], [0.01, -0.01, 0.0], "not reproduced"),   # Node2Vec clearly hurts the KG model
    ([0.02, -0.01, 0.015], [0.01, -0.01, 0.0], "inconclusive"),
])
def test_c2_verdicts(tmp_path, kg_delta, lstm_delta, verdict):
    ma, base = shifted(BASE, [0.05, 0.05, 0.05]), shifted(BASE, [0, 0, 0])
    groups = four_models(ma, base, shifted(BASE, [0.05 + d for d in kg_delta]), shifted(BASE, lstm_delta))
    assert claims.claim_c2(runs_of(tmp_path, groups))["verdict"] == verdict


def test_c2_one_seed_is_inconclusive(tmp_path):
    groups = {g: v[:1] for g, v in four_models(shifted(BASE, [0.05] * 3)).items()}
    result = claims.claim_c2(runs_of(tmp_path, groups))
    assert result["verdict"] == "inconclusive" and "one seed" in result["evidence"]


def students(t05: float, t1: float, t2: list[float], t5: float) -> dict[str, list[dict]]:
    jitter = [0.0, 0.004, -0.003]
    return {"student-T0.5": shifted([t05] * 3, jitter), "student-T1": shifted([t1] * 3, jitter),
            "student-T2": shifted([t2[i] for i in range(3)], [0, 0, 0]), "student-T5": shifted([t5] * 3, jitter[::-1])}


@pytest.mark.parametrize("spec, verdict, best", [
    (students(0.38, 0.40, [0.20, 0.21, 0.19], 0.15), "reproduced", "best T = 1"),
    (students(0.45, 0.40, [0.20, 0.21, 0.19], 0.15), "not reproduced", "best T = 0.5"),  # T=0.5 clearly better
    (students(0.30, 0.40, [0.41, 0.42, 0.415], 0.15), "not reproduced", "best T = 2"),   # T=2 not below T=1
    (students(0.38, 0.40, [0.39, 0.405, 0.38], 0.15), "inconclusive", "best T = 1"),     # T=2 within noise
])
def test_c3_verdicts(tmp_path, spec, verdict, best):
    result = claims.claim_c3(runs_of(tmp_path, spec))
    assert result["verdict"] == verdict and best in result["evidence"]


def test_c3_one_seed_is_inconclusive(tmp_path):
    spec = {g: v[:1] for g, v in students(0.38, 0.40, [0.2] * 3, 0.15).items()}
    result = claims.claim_c3(runs_of(tmp_path, spec))
    assert result["verdict"] == "inconclusive" and "one seed" in result["evidence"] and "best T = 1" in result["evidence"]


@pytest.mark.parametrize("student_map, verdict", [
    ([0.395, 0.396, 0.398], "reproduced"),
    ([0.30, 0.31, 0.29], "not reproduced"),
    ([0.396, 0.36, 0.388], "inconclusive"),
])
def test_c4_verdicts(tmp_path, student_map, verdict):
    teacher = [level(0.4)] * 3
    spec = {"mixed_attention-n2v": teacher, "student-T1": [level(v) for v in student_map],
            "student-T2": [level(0.2)] * 3}
    result = claims.claim_c4(runs_of(tmp_path, spec))
    assert result["verdict"] == verdict and "T = 1" in result["evidence"]


def test_c4_one_seed_is_inconclusive(tmp_path):
    result = claims.claim_c4(runs_of(tmp_path, {"mixed_attention-n2v": [level(0.4)], "student-T1": [level(0.39)]}))
    assert result["verdict"] == "inconclusive" and "one seed" in result["evidence"] and "97.5%" in result["evidence"]


def latency(student: tuple, baseline: tuple, teacher: tuple, traversal: tuple = (20.0, 19.0, 21.0)) -> dict:
    timing = lambda t: {"batched": {"median": t[0], "min": t[1], "max": t[2], "iqr": 0.0, "repeats": 7}}
    return {"models": {"Baseline": timing(baseline), "Mixed Attention + Node2Vec": timing(teacher),
                       "Mixed Attention + Node2Vec (graph traversal)": timing(traversal),
                       "Student (T = 1)": timing(student)}}


@pytest.mark.parametrize("bench, verdict", [
    (latency((0.1, 0.09, 0.11), (1.0, 0.9, 1.1), (2.7, 2.5, 2.9)), "reproduced"),
    (latency((1.0, 0.95, 1.05), (0.5, 0.45, 0.55), (2.7, 2.5, 2.9)), "not reproduced"),  # baseline faster
    (latency((0.5, 0.49, 0.51), (1.0, 0.9, 1.1), (2.0, 1.9, 2.1)), "not reproduced"),    # only 4x and 2x
    (latency((0.1, 0.05, 1.5), (1.0, 0.9, 1.1), (2.7, 2.5, 2.9)), "inconclusive"),       # intervals overlap
])
def test_c5_verdicts(bench, verdict):
    result = claims.claim_c5(bench)
    assert result["verdict"] == verdict
    assert "teacher with tables" in result["evidence"] and "graph traversal" in result["evidence"]


def with_scaling(bench: dict, per_size: dict[int, tuple[float, float, float]]) -> dict:
    """Add catalogue-scaling records: size -> (student, baseline, teacher) batched medians."""
    names = ("Student (T = 1)", "Baseline", "Mixed Attention + Node2Vec")
    records = [{"model": n, "n_items": size, "batched_s_per_1000": t}
               for size, times in per_size.items() for n, t in zip(names, times)]
    return {**bench, "n_items": 1619, "catalogue_scaling": {"records": records}}


@pytest.mark.parametrize("per_size, verdict", [
    ({2000: (0.02, 0.022, 0.06), 150_000: (0.5, 3.0, 8.0)}, "reproduced"),       # 16x and 6x at 150k
    ({2000: (0.001, 0.02, 0.03), 150_000: (0.5, 0.6, 0.8)}, "not reproduced"),  # big gaps only when small
])
def test_c5_is_judged_at_the_paper_scale_catalogue(per_size, verdict):
    bench = with_scaling(latency((0.1, 0.09, 0.11), (1.0, 0.9, 1.1), (2.7, 2.5, 2.9)), per_size)
    result = claims.claim_c5(bench)
    assert result["verdict"] == verdict
    assert "150,000 items" in result["evidence"] and "1,618 items" in result["evidence"]


def test_c5_without_benchmark_is_inconclusive():
    assert claims.claim_c5(None)["verdict"] == "inconclusive"


def relatedness(ma: list[float], ma_n2v: list[float], baseline: list[float] | None = None,
                sasrec: list[float] | None = None, random: float = 0.01, popular: float = 0.05) -> dict:
    """relatedness.json with per-seed KG-neighbour shares; the non-KG models at 0.3 by default."""
    runs = {}
    groups = {"mixed_attention": ma, "mixed_attention-n2v": ma_n2v, "baseline": baseline or [0.3] * 3,
              "baseline-n2v": baseline or [0.3] * 3, "sasrec": sasrec or [0.3] * 3}
    for group, shares in groups.items():
        runs.update({f"{group}_s{s}": {"kg_neighbour_share": v, "same_category_share": 0.6}
                     for s, v in zip(SEEDS, shares)})
    return {"k": 5, "n_seed_items": 100, "runs": runs,
            "random": {"kg_neighbour_share": random, "same_category_share": 0.1},
            "popularity": {"kg_neighbour_share": popular, "same_category_share": 0.2}}


@pytest.mark.parametrize("rel, verdict", [
    (relatedness([0.6, 0.62, 0.58], [0.7, 0.68, 0.72]), "reproduced"),
    # far above random and popular items, but no more related than the LSTM's: the claim fails
    (relatedness([0.6, 0.62, 0.58], [0.7, 0.68, 0.72], baseline=[0.65, 0.66, 0.64]), "not reproduced"),
    (relatedness([0.6, 0.62, 0.58], [0.7, 0.68, 0.72], sasrec=[0.55, 0.64, 0.57]), "inconclusive"),
    (relatedness([0.6], [0.7], [0.3], [0.3]), "inconclusive"),
])
def test_c6_verdicts(rel, verdict):
    result = claims.claim_c6(rel)
    assert result["verdict"] == verdict and "Baseline" in result["evidence"]


def test_c6_cannot_pass_on_chance_levels_alone():
    """The old check (beats random and popular items) passed any co-view model: not any more."""
    rel = relatedness([0.6, 0.62, 0.58], [0.7, 0.68, 0.72], baseline=[0.7, 0.72, 0.71], sasrec=[0.7] * 3)
    assert claims.claim_c6(rel)["verdict"] == "not reproduced"


def test_c6_without_relatedness_data_is_inconclusive():
    result = claims.claim_c6(None)
    assert result["verdict"] == "inconclusive" and "no relatedness data" in result["evidence"]


def _digest(runs, latency=None, relatedness=None, teacher="mixed_attention-n2v"):
    import pandas as pd
    from recpress_utils.report.digest import Digest
    return Digest(runs=runs, curves=pd.DataFrame(), latency=latency, relatedness=relatedness, data={},
                  stages=pd.DataFrame(), provenance={"config": {"distill": {"teacher": teacher}}})


def test_claims_table_reads_the_digest(tmp_path):
    runs = runs_of(tmp_path, four_models(shifted(BASE, [0.05, 0.06, 0.055])))
    table = claims.claims_table(_digest(runs))
    assert list(table.index) == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert table.loc["C1", "verdict"] == "reproduced"
    assert set(table.columns) == {"statement", "verdict", "evidence", "headline"}
    assert table.loc["C6", "verdict"] == "inconclusive"
    table = claims.claims_table(_digest(runs, latency((0.1, 0.09, 0.11), (1.0, 0.9, 1.1), (2.7, 2.5, 2.9)),
                                           relatedness([0.6, 0.62, 0.58], [0.7, 0.68, 0.72])))
    assert table.loc["C5", "verdict"] == "reproduced" and table.loc["C6", "verdict"] == "reproduced"


def test_claim_c4_follows_the_configured_teacher(tmp_path):
    groups = {"sasrec": shifted(BASE, [0.0, 0.0, 0.0]), "student-T1": shifted(BASE, [0.0, 0.0, 0.0]),
              "mixed_attention-n2v": shifted(BASE, [0.3, 0.3, 0.3])}
    runs = runs_of(tmp_path, groups)
    assert claims.claims_table(_digest(runs, teacher="sasrec")).loc["C4", "verdict"] == "reproduced"
    assert claims.claims_table(_digest(runs)).loc["C4", "verdict"] == "not reproduced"


# --------------------------------------------------------------------------- provenance
def test_provenance(tmp_path, monkeypatch):
    write_run(tmp_path, "baseline", 44, level(0.3))
    write_run(tmp_path, "baseline", 42, level(0.3))
    (tmp_path / "config.yaml").write_text("seeds: [42, 44]\n")

    real_run = subprocess.run  # ``platform`` calls ``uname`` through it too; only git is faked

    def fake_run(cmd, **kwargs):
        if cmd[0] != "git":
            return real_run(cmd, **kwargs)
        assert cmd == ["git", "rev-parse", "HEAD"]
        return subprocess.CompletedProcess(cmd, 0, stdout="abc123\n", stderr="")

    monkeypatch.setattr(provenance.subprocess, "run", fake_run)
    prov = provenance.provenance(tmp_path / "config.yaml", tmp_path)
    assert prov["git_commit"] == "abc123" and prov["seeds"] == [42, 44]
    assert prov["config"] == {"seeds": [42, 44]} and prov["cpu_count"] >= 1
    assert set(prov["packages"]) == {"torch", "numpy", "pandas", "snakemake", "pecanpy", "papermill"}

    def no_git(cmd, **kwargs):
        if cmd[0] != "git":
            return real_run(cmd, **kwargs)
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    prov = provenance.provenance({"dataset": "synthetic"}, tmp_path / "empty")
    assert prov["git_commit"] == "unknown" and prov["seeds"] == [] and prov["config"] == {"dataset": "synthetic"}


# --------------------------------------------------------------------------- peers
def test_peers_join_tables_2_3_beyond_the_paper_simple_to_strong(tmp_path):
    groups = {g: [level(0.3)] * 3 for g in ("baseline", "bert4rec", "sasrec_bce", "sasrec", "popularity", "gru4rec")}
    table = tables.paper_table(runs_of(tmp_path, groups), "tables_2_3")
    peers = list(table.index[4:])
    assert peers == ["Popularity (training counts)", "GRU4Rec (full CE)", "SASRec (full CE)",
                     "SASRec (BCE, 1 negative)", "BERT4Rec (masked items)"]
    assert (table.loc[peers, ("note", "")] == tables.BEYOND).all()
    assert table.loc[peers, ("n", "")].tolist() == [3] * 5
    assert table.loc["Baseline", ("note", "")] == ""


def test_leaderboard_sorts_by_the_first_metric_and_marks_the_paper_models(tmp_path):
    runs = runs_of(tmp_path, {"baseline": [level(0.30)] * 3, "sasrec": [level(0.35), level(0.36), level(0.37)],
                              "student-T1": [level(0.25)] * 3, "popularity": [level(0.05)] * 2})
    board = tables.leaderboard(runs)
    assert list(board.index) == ["SASRec (full CE)", "Baseline", "Student (T = 1)", "Popularity (training counts)"]
    assert board.loc["SASRec (full CE)", "NDCG@10"] == pytest.approx(0.36)
    assert board.loc["SASRec (full CE)", "HR@10 CI low"] < 0.36 < board.loc["SASRec (full CE)", "HR@10 CI high"]
    assert board["note"].tolist() == [tables.BEYOND, "paper", "paper", tables.BEYOND]
    assert board.loc["Popularity (training counts)", "n"] == 2


@pytest.mark.parametrize("sasrec, status", [
    ([0.30, 0.32, 0.31], "pass"),      # 6x popularity on every seed
    ([0.06, 0.07, 0.065], "fail"),     # barely above popularity
    ([0.05, 0.30, 0.10], "inconclusive"),
    ([0.30, 0.32], "inconclusive"),    # 6x, but two seeds decide nothing
])
def test_sanity_bar_sasrec_beats_popularity_by_a_wide_margin(tmp_path, sasrec, status):
    runs = runs_of(tmp_path, {"popularity": [level(0.05)] * 3, "sasrec": [level(v) for v in sasrec]})
    bars = tables.sanity_bars(runs, "synthetic")
    assert len(bars) == 1 and bars.loc[0, "status"] == status
    assert bars.loc[0, "source"] == f"paired by seed, {len(sasrec)} seeds"


def test_sanity_bar_against_published_numbers(tmp_path):
    runs = runs_of(tmp_path, {"popularity": [level(0.02)] * 3, "sasrec": [level(0.07, HR_10=0.12)] * 3})
    bars = tables.sanity_bars(runs, "ml-100k").set_index("check")
    published = [c for c in bars.index if "published" in c]
    assert len(published) == 2 and (bars.loc[published, "status"] == "pass").all()
    assert all("UniRec" in bars.loc[c, "source"] for c in published)
    far = tables.sanity_bars(runs_of(tmp_path / "far", {"sasrec": [level(0.5)] * 3}), "ml-100k")
    assert (far["status"] == "fail").all() and len(far) == 2


def test_latency_beside_paper_marks_the_peers():
    bench = latency((0.1, 0.09, 0.11), (1.0, 0.9, 1.1), (2.7, 2.5, 2.9))
    for row in bench["models"].values():
        row.update(single={"median": 1.0}, x_floor=2.0, parameters=10, bytes=1000)
    bench["models"]["SASRec (full CE)"] = bench["models"]["Baseline"]
    bench["floor"] = {"product_topk": {"median": 0.05, "iqr": 0.0}}
    table = tables.latency_beside_paper(bench)
    assert table.loc["Baseline", "paper s/1000"] == 1.01 and table.loc["Student (T = 1)", "paper s/1000"] == 0.189
    assert table.loc["SASRec (full CE)", "note"] == tables.BEYOND and math.isnan(table.loc["SASRec (full CE)", "paper s/1000"])
    assert (table.drop(index="SASRec (full CE)")["note"] == "").all()


def test_a_cheaper_loss_is_judged_against_full_softmax_on_the_same_seeds():
    """Within 2 % (relative MRR@20) it may replace full softmax; 5 % below it may not."""
    from recpress_utils.report.tables import loss_comparison

    rows = []
    for group, loss, name, mrr, seconds in (("sasrec_full", "cross_entropy", "SASRec (full CE)", 0.300, 150.0),
                                            ("sasrec_2048", "sampled_softmax", "SASRec (2048)", 0.297, 30.0),
                                            ("sasrec_256", "sampled_softmax", "SASRec (256)", 0.285, 25.0)):
        rows.append({"group": group, "model": "sasrec", "loss": loss, "display_name": name, "seed": 42,
                     "MRR@20": mrr, "seconds_per_epoch": seconds, "epochs_run": 8})
    rows.append({"group": "popularity", "model": "popularity", "loss": "counts", "display_name": "Popularity",
                 "seed": 42, "MRR@20": 0.02, "seconds_per_epoch": np.nan, "epochs_run": 0})
    table = loss_comparison(pd.DataFrame(rows)).droplevel("architecture")
    assert list(table.index) == ["SASRec (full CE)", "SASRec (2048)", "SASRec (256)"], "popularity has no reference"
    assert table.loc["SASRec (full CE)", "verdict"] == "reference"
    assert table.loc["SASRec (2048)", "verdict"] == "within 2%"
    assert table.loc["SASRec (2048)", "vs full softmax"] == pytest.approx(-0.01)
    assert table.loc["SASRec (256)", "verdict"] == "not within 2%"


def test_the_teacher_cache_is_judged_against_full_vocabulary_kd_on_the_same_seeds():
    """The cached way is "within" only if its test MRR@20 stays within 2 % of full KD's, paired by seed;
    its speed-up is full's training seconds per epoch over its own."""
    from recpress_utils.report.tables import teacher_cache_comparison

    def row(mode, seed, mrr, seconds, top_k=None, negatives=None):
        return {"mode": mode, "temperature": 1.0, "seed": seed, "epochs": 3, "top_k": top_k, "n_negatives": negatives,
                "best_epoch": 3, "valid_MRR@20": mrr, "test_MRR@20": mrr, "test_HR@20": 0.6,
                "cache_seconds": 0.0 if mode == "full" else 100.0, "seconds_per_epoch": seconds,
                "train_seconds": 3 * seconds, "peak_rss_mb": 3000.0 if mode == "full" else 1500.0, "threads": 1}

    close = pd.DataFrame([row("full", 42, 0.250, 600.0), row("cached", 42, 0.248, 60.0, 100, 2048)])
    table = teacher_cache_comparison(close).droplevel(["T", "epochs"])
    full, cached = "teacher's full distribution, student's full softmax", \
        "teacher's top-100 cached, student scores a pool of 2048"
    assert list(table.index) == [cached, full] or list(table.index) == [full, cached]
    assert table.loc[full, "verdict"] == "reference" and table.loc[cached, "verdict"] == "within 2%"
    assert table.loc[cached, "speed-up vs full"] == pytest.approx(10.0)
    assert table.loc[cached, "vs full"] == pytest.approx(-0.008)
    worse = pd.DataFrame([row("full", 42, 0.250, 600.0), row("cached", 42, 0.240, 60.0, 100, None)])
    table = teacher_cache_comparison(worse).droplevel(["T", "epochs"])
    assert table.loc["teacher's top-100 cached, student's full softmax", "verdict"] == "not within 2%"


def test_every_verdict_has_a_one_line_headline_for_the_front_page():
    """The front page shows each verdict's deciding interval in one short line, in points."""
    from recpress_utils.report.claims import _points
    from recpress_utils.report.digest import load_digest

    assert _points((0.008, 0.003, 0.013), "MRR@20") == "+0.8 pt MRR@20 [0.3, 1.3]"
    table = claims.claims_table(load_digest(REPO_ROOT / "reports" / "synthetic"))
    assert list(table.columns) == ["statement", "verdict", "evidence", "headline"]
    for claim, row in table.iterrows():
        assert row["headline"] and "\n" not in row["headline"] and len(row["headline"]) <= 90, claim
    missing = claims.claim_c1(table.iloc[:0].assign(group=[], seed=[]))
    assert (missing["verdict"], missing["headline"]) == ("inconclusive", "runs missing")


def test_a_resumed_job_counts_the_epochs_of_its_earlier_attempts(tmp_path):
    """Snakemake benchmarks a job's last attempt only. A job whose log says it resumed after epoch N
    adds its first N epochs' share of the run's training seconds (validation included; the epochs'
    own seconds leave it out), and only those: however long the last attempt ran (here longer than
    the run's training seconds, which a fresh job's never exceed), it is flagged."""
    from recpress_utils.report.digest import stages as job_stages

    for folder in ("benchmarks", "logs"):
        (tmp_path / folder).mkdir()
    for job, seconds in (("04_train_model_sasrec_s42", 300.0), ("05_distill_T1_s42", 900.0),
                         ("09_kd_e16_rd_s42", 1300.0), ("02_build_kg", 12.5)):
        (tmp_path / "benchmarks" / f"{job}.tsv").write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:00:00\t512.0\n")
    epochs = [{"epoch": e, "epoch_seconds": 100.0 * e} for e in (1, 2, 3)]
    for run in ("runs/sasrec_s42", "runs/student-T1_s42", "kd/e16/rd_s42"):
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "metrics.json").write_text(json.dumps({"train_seconds": 1200.0, "history": epochs}))
    (tmp_path / "logs" / "04_train_model_sasrec_s42.log").write_text(
        "resumed from results/x/runs/sasrec_s42/checkpoint.pt after epoch 1\nepoch 2\n"
        "resumed from results/x/runs/sasrec_s42/checkpoint.pt after epoch 2\nepoch 3\n")
    (tmp_path / "logs" / "09_kd_e16_rd_s42.log").write_text(
        "resumed from results/x/kd/e16/rd_s42/checkpoint.pt after epoch 1\n")
    (tmp_path / "logs" / "05_distill_T1_s42.log").write_text("epoch 1\nepoch 2\nepoch 3\n")
    stages = job_stages(tmp_path).set_index("job")
    # 300 + 1200 * (100 + 200) / 600, and 1300 + 1200 * 100 / 600
    assert stages.loc["04_train_model_sasrec_s42", ["seconds", "resumed"]].tolist() == [900.0, True]
    assert stages.loc["09_kd_e16_rd_s42", ["seconds", "resumed"]].tolist() == [1500.0, True]
    assert stages.loc["05_distill_T1_s42", ["seconds", "resumed"]].tolist() == [900.0, False]
    assert stages.loc["02_build_kg", ["seconds", "resumed", "stage"]].tolist() == [12.5, False, "02"]


def test_update_digest_replaces_only_the_named_groups(tmp_path):
    """A profile too long to rerun: one model's runs are swapped in, every other row and the
    provenance's machine stay, and a config or size change beyond that model is refused."""
    from recpress_utils.report.digest import build_digest, load_digest, update_digest

    config = {"dataset": "x", "paper": True, "train": {}, "models": {"baseline": {}, "mixed_attention": {}}}
    old, new, digest = tmp_path / "old", tmp_path / "new", tmp_path / "digest"
    write_groups(old, {"baseline": [level(v) for v in BASE], "mixed_attention": [level(v) for v in BASE]})
    for results in (old, new):
        (results / "prepared").mkdir(parents=True)
        (results / "prepared" / "stats.json").write_text("{}")
    build_digest(old, digest, config)
    committed = load_digest(digest).provenance
    write_groups(new, {"mixed_attention": [level(0.5)] * 3})
    changed = {**config, "models": {"baseline": {}, "mixed_attention": {"settings": {"dropout": 0.1}}}}

    with pytest.raises(ValueError, match="models.baseline"):
        update_digest(new, digest, {**changed, "models": {**changed["models"], "baseline": {"train": {"lr": 0.1}}}},
                      ["mixed_attention"])
    with pytest.raises(ValueError, match="dataset"):
        update_digest(new, digest, {**changed, "dataset": "y"}, ["mixed_attention"])
    update_digest(new, digest, changed, ["mixed_attention"])

    after = load_digest(digest)
    by_group = after.runs.groupby("group")["NDCG@10"].mean()
    assert by_group["mixed_attention"] == pytest.approx(0.5)
    assert by_group["baseline"] == pytest.approx(np.mean(BASE))
    assert len(after.runs) == 6 and len(after.curves) == 6
    assert after.config == changed and after.provenance["git_commit"] == committed["git_commit"]
    assert [u["groups"] for u in after.provenance["updates"]] == [["mixed_attention"]]

    bigger = json.loads((new / "runs" / "mixed_attention_s42" / "metrics.json").read_text())
    (new / "runs" / "mixed_attention_s42" / "metrics.json").write_text(json.dumps({**bigger, "n_parameters": 2000}))
    with pytest.raises(ValueError, match="changed size"):
        update_digest(new, digest, changed, ["mixed_attention"])


def test_extend_digest_adds_a_sittings_runs_and_keeps_the_committed_ones_it_lacks(tmp_path):
    """The budget rule's long profiles: peers committed from one sitting, the paper's models at one seed
    from another. Fresh runs of the same name replace committed ones, the rest are kept with their
    relatedness entries, and the provenance names what was kept from where."""
    from recpress_utils.report.digest import build_digest, extend_digest, load_digest

    config = {"dataset": "x", "paper": False, "seeds": list(SEEDS), "train": {}, "models": {"sasrec": {}}}
    old, new, digest = tmp_path / "old", tmp_path / "new", tmp_path / "digest"
    write_groups(old, {"sasrec": [level(v) for v in BASE]})
    for results in (old, new):
        (results / "prepared").mkdir(parents=True)
        (results / "prepared" / "stats.json").write_text("{}")
        (results / "claims").mkdir()
    (old / "claims" / "relatedness.json").write_text(json.dumps(
        {"k": 5, "runs": {f"sasrec_s{s}": {"kg_neighbour_share": 0.1} for s in SEEDS}}))
    build_digest(old, digest, config)
    committed = load_digest(digest).provenance
    for group in ("baseline", "mixed_attention"):
        write_run(new, group, 42, level(0.4))
    write_run(new, "sasrec", 42, level(0.6))  # made again: replaces the committed row
    (new / "claims" / "relatedness.json").write_text(json.dumps(
        {"k": 5, "runs": {"baseline_s42": {"kg_neighbour_share": 0.2}, "sasrec_s42": {"kg_neighbour_share": 0.3}}}))
    paper = {**config, "paper": True, "paper_seeds": [42], "models": {"sasrec": {}, "baseline": {}}}

    with pytest.raises(ValueError, match="models.sasrec"):
        extend_digest(new, digest, {**paper, "models": {"sasrec": {"train": {"lr": 0.1}}}})
    extend_digest(new, digest, paper)

    after = load_digest(digest)
    assert sorted(after.runs["run"]) == ["baseline_s42", "mixed_attention_s42", "sasrec_s42", "sasrec_s43", "sasrec_s44"]
    sasrec = after.runs.set_index("run")["NDCG@10"]
    assert sasrec["sasrec_s42"] == pytest.approx(0.6) and sasrec["sasrec_s43"] == pytest.approx(BASE[1])
    assert after.relatedness["runs"] == {"baseline_s42": {"kg_neighbour_share": 0.2},
                                         "sasrec_s42": {"kg_neighbour_share": 0.3},
                                         "sasrec_s43": {"kg_neighbour_share": 0.1},
                                         "sasrec_s44": {"kg_neighbour_share": 0.1}}
    assert after.config == paper
    assert after.provenance["kept"] == [{"runs": ["sasrec_s43", "sasrec_s44"],
                                         **{k: committed[k] for k in ("git_commit", "cpu", "cpu_count", "packages")}}]

    # A third sitting makes baseline_s42 again: each earlier sitting keeps the runs it made that survive.
    third = tmp_path / "third"
    (third / "prepared").mkdir(parents=True)
    (third / "prepared" / "stats.json").write_text("{}")
    write_run(third, "baseline", 42, level(0.5))
    extend_digest(third, digest, paper)
    assert [s["runs"] for s in load_digest(digest).provenance["kept"]] == [
        ["sasrec_s43", "sasrec_s44"], ["mixed_attention_s42", "sasrec_s42"]]


def test_kept_peers_do_not_depend_on_the_paper_stages_settings():
    """A sitting that adds temperatures reruns the paper's models and keeps the peers: the peers
    never read `distill`, so only a kept student makes the new setting a conflict."""
    from recpress_utils.report.digest import _config_conflicts

    old = {"paper": True, "seeds": [42], "distill": {"temperatures": [1]}, "models": {}}
    new = {**old, "distill": {"temperatures": [0.5, 1, 2, 5]}}
    assert _config_conflicts(old, new, ["popularity", "sasrec"]) == []
    assert _config_conflicts(old, new, ["sasrec", "student-T1"]) == ["distill.temperatures"]


def _write_kd(root: Path, size: str, method: str, seed: int, value: float, teacher: float | None = None) -> None:
    """One toolkit run's ``kd/<size>/<method>_s<seed>/metrics.json`` as ``recpress_utils.runs.kd_run``
    writes it; ``teacher``: the teacher's test level it recorded (runs before that was recorded have none)."""
    run = root / "kd" / size / f"{method}_s{seed}"
    run.mkdir(parents=True)
    recorded = {} if teacher is None else {"test": level(teacher)}
    teachers = [] if method == "control" else [{"checkpoint": f"{root}/runs/mixed_attention-n2v_s42/model.pt",
                                                **recorded}]
    run.joinpath("metrics.json").write_text(json.dumps({
        "seed": seed, "test": level(value), "best_epoch": 3, "epochs_run": 5, "train_seconds": 10.0,
        "seconds_per_epoch": 2.0, "n_parameters": 100,
        "kd": {"method": None if method == "control" else "soft_labels", "teachers": teachers, "method_parameters": 0,
               "spec": {} if method == "control" else {"method": "soft_labels", "settings": {"temperature": 2}}}}))


def test_extend_digest_merges_the_toolkit_runs_of_several_sittings(tmp_path):
    """Toolkit runs made over sittings (one seed per sitting on a machine that is not kept): a
    sitting's runs replace the committed ones of the same size, method and seed, the others stay
    and are named in the provenance, and a changed toolkit setting under kept runs is refused."""
    from recpress_utils.report.digest import build_digest, extend_digest, load_digest

    config = {"dataset": "x", "paper": True, "seeds": list(SEEDS), "paper_seeds": [42], "train": {}, "models": {},
              "kd": {"teacher_seed": 42, "train": {"epochs": 5}, "sizes": {"e16": {"emb_dim": 16}},
                     "methods": {"soft": {"method": "soft_labels"}}}}
    old, new, digest = tmp_path / "old", tmp_path / "new", tmp_path / "digest"
    for results in (old, new):
        (results / "prepared").mkdir(parents=True)
        (results / "prepared" / "stats.json").write_text("{}")
    write_run(old, "mixed_attention-n2v", 42, level(0.3))
    write_run(new, "mixed_attention-n2v", 42, level(0.3))
    for method in ("control", "soft"):
        for seed in (42, 43):
            _write_kd(old, "e16", method, seed, 0.2)
        for seed in (43, 44):
            _write_kd(new, "e16", method, seed, 0.25, teacher=0.35)
    build_digest(old, digest, config)
    with pytest.raises(ValueError, match=r"kd.train.*rerun them"):
        extend_digest(new, digest, {**config, "kd": {**config["kd"], "train": {"epochs": 8}}})
    extend_digest(new, digest, config)
    kd = load_digest(digest).kd.set_index(["method", "seed"])["NDCG@10"]
    assert sorted(kd.index) == [(m, s) for m in ("control", "soft") for s in (42, 43, 44)]
    assert kd[("soft", 42)] == pytest.approx(0.2) and kd[("soft", 43)] == pytest.approx(0.25)
    settings = load_digest(digest).kd.set_index(["method", "seed"])["settings"]
    assert settings[("soft", 42)] == '{"temperature": 2}' and settings[("control", 43)] == "{}"
    # the teacher the new runs learnt from (0.35, recorded) is the reference, not the digest's row (0.3)
    from recpress_utils.report.kd import teacher_reference
    merged = load_digest(digest)
    recorded = merged.kd.set_index(["method", "seed"])["teacher:NDCG@10"]
    assert pd.isna(recorded[("soft", 42)]) and recorded[("soft", 43)] == pytest.approx(0.35)  # kept run: none
    assert teacher_reference(merged.runs, "mixed_attention-n2v", "NDCG@10", config, merged.kd)[0] == pytest.approx(0.35)
    kept = load_digest(digest).provenance["kept"]
    assert [s["runs"] for s in kept] == [["kd/e16/control_s42", "kd/e16/soft_s42"]]


def _write_longer(results: Path, method: str, seed: int, value: float, epochs: int = 40) -> None:
    """A toolkit run trained under a longer budget: ``_write_kd`` plus the cap and patience it recorded."""
    _write_kd(results, "e16", method, seed, value)
    path = results / "kd" / "e16" / f"{method}_s{seed}" / "metrics.json"
    path.write_text(json.dumps({**json.loads(path.read_text()),
                                "train_config": {"epochs": epochs, "patience": 3, "lr": 0.003}}))


def test_the_longer_budgets_runs_are_written_apart_with_the_cap_they_recorded(tmp_path):
    """kd_longer.csv comes from a results folder of its own (kd.train.epochs raised): the toolkit's
    table of its runs plus the cap and patience each run recorded; a folder without runs is named."""
    from recpress_utils.report.digest import KD_LONGER_FILE, main

    results, out = tmp_path / "longer", tmp_path / "digest"
    out.mkdir()
    for method in ("control", "soft"):
        for seed in (42, 43):
            _write_longer(results, method, seed, 0.25)
    main(["--results", str(results), "--out", str(out), "--kd-longer"])
    table = pd.read_csv(out / KD_LONGER_FILE)
    assert sorted(zip(table["method"], table["seed"])) == [("control", 42), ("control", 43), ("soft", 42), ("soft", 43)]
    assert set(table["epochs_cap"]) == {40} and set(table["patience"]) == {3}
    assert [p.name for p in out.iterdir()] == [KD_LONGER_FILE]  # nothing else of the digest is touched
    with pytest.raises(FileNotFoundError, match="no toolkit runs"):
        main(["--results", str(tmp_path / "empty"), "--out", str(out), "--kd-longer"])


def test_a_method_trained_again_under_the_longer_budget_replaces_only_its_own_rows(tmp_path):
    """A method swept again after its longer-budget runs is trained again in a folder without the
    other methods' runs: ``--kd-longer --update e16/soft`` replaces its rows and keeps the control's;
    a method absent from the folder, or trained under another cap than its control, is refused."""
    from recpress_utils.report.digest import KD_LONGER_FILE, main

    first, again, out = tmp_path / "first", tmp_path / "again", tmp_path / "digest"
    out.mkdir()
    for seed in (42, 43):
        _write_longer(first, "control", seed, 0.20)
        _write_longer(first, "soft", seed, 0.25)
        _write_longer(again, "soft", seed, 0.30)
    main(["--results", str(first), "--out", str(out), "--kd-longer"])
    main(["--results", str(again), "--out", str(out), "--kd-longer", "--update", "e16/soft"])
    table = pd.read_csv(out / KD_LONGER_FILE).set_index(["method", "seed"])["NDCG@10"]
    assert sorted(table.index) == [("control", 42), ("control", 43), ("soft", 42), ("soft", 43)]
    assert table[("control", 43)] == pytest.approx(0.20) and table[("soft", 43)] == pytest.approx(0.30)
    with pytest.raises(FileNotFoundError, match=r"e16/rrd"):
        main(["--results", str(again), "--out", str(out), "--kd-longer", "--update", "e16/rrd"])
    other = tmp_path / "other"
    _write_longer(other, "soft", 42, 0.35, epochs=60)
    with pytest.raises(ValueError, match="control's budget"):
        main(["--results", str(other), "--out", str(out), "--kd-longer", "--update", "e16/soft"])
    assert pd.read_csv(out / KD_LONGER_FILE).set_index(["method", "seed"]).loc[("soft", 42), "NDCG@10"] == \
        pytest.approx(0.30)  # a refused update leaves the table as it was


def test_an_update_names_what_it_leaves_computed_from_the_earlier_runs(tmp_path):
    """Replacing a teacher's runs keeps the toolkit runs that learnt from it and the relatedness
    check that scored it: the update records them, and the page's note names them; an update of a
    model nothing was computed from records nothing."""
    from recpress_utils.report.digest import build_digest, load_digest, update_digest
    from recpress_utils.report.provenance import stale_note

    config = {"dataset": "x", "paper": True, "seeds": list(SEEDS), "paper_seeds": [42], "train": {},
              "models": {"sasrec": {}, "baseline": {}},
              "kd": {"teacher_seed": 42, "sizes": {"e16": {"emb_dim": 16}}, "methods": {"soft": {"method": "soft_labels"}}}}
    old, new, digest = tmp_path / "old", tmp_path / "new", tmp_path / "digest"
    for results in (old, new):
        (results / "prepared").mkdir(parents=True)
        (results / "prepared" / "stats.json").write_text("{}")
    for group in ("mixed_attention-n2v", "sasrec", "baseline"):
        write_run(old, group, 42, level(0.3))
    for method in ("control", "soft"):
        _write_kd(old, "e16", method, 42, 0.2)
    (old / "claims").mkdir()
    (old / "claims" / "relatedness.json").write_text(json.dumps({"runs": {"mixed_attention-n2v_s42": {}, "sasrec_s42": {}}}))
    build_digest(old, digest, config)
    write_run(new, "mixed_attention-n2v", 42, level(0.35))
    write_run(new, "baseline", 42, level(0.35))
    update_digest(new, digest, config, ["mixed_attention-n2v"])
    update_digest(new, digest, config, ["baseline"])
    record = load_digest(digest).provenance
    assert [u.get("stale") for u in record["updates"]] == [
        {"relatedness": ["mixed_attention-n2v_s42"], "kd": ["e16/soft"]}, None]
    assert stale_note(record, "kd") == (
        "Not rerun: the toolkit runs e16/soft learnt from the earlier runs of mixed_attention-n2v, retrained since "
        "in a digest update whose runs the leaderboard shows.")
    assert "relatedness check (C6) scored the earlier runs of mixed_attention-n2v (mixed_attention-n2v_s42)" in \
        stale_note(record, "relatedness")
    assert stale_note(load_digest(digest).provenance | {"updates": record["updates"][1:]}, "kd") is None


def test_an_update_makes_again_what_an_earlier_one_left_behind(tmp_path):
    """Retraining the teacher leaves the toolkit runs it taught and its relatedness entry behind; a
    later update of the teacher with the toolkit group (``e16/soft``) and a fresh relatedness check
    replaces those rows and entries, records them as made again, and the page's notes go. A toolkit
    group without fresh runs, or a check of other seed items, is refused."""
    from recpress_utils.report.digest import build_digest, load_digest, update_digest
    from recpress_utils.report.provenance import stale_note

    config = {"dataset": "x", "paper": True, "seeds": [42], "paper_seeds": [42], "train": {}, "models": {},
              "kd": {"teacher_seed": 42, "sizes": {"e16": {"emb_dim": 16}},
                     "methods": {"soft": {"method": "soft_labels"}, "rd": {"method": "ranking"}}}}
    old, new, digest = tmp_path / "old", tmp_path / "new", tmp_path / "digest"
    for results in (old, new):
        (results / "prepared").mkdir(parents=True)
        (results / "prepared" / "stats.json").write_text("{}")
        (results / "claims").mkdir()
    write_run(old, "mixed_attention-n2v", 42, level(0.3))
    for method in ("control", "soft", "rd"):
        _write_kd(old, "e16", method, 42, 0.2)
    checked = {"k": 10, "n_seed_items": 50}
    (old / "claims" / "relatedness.json").write_text(json.dumps({**checked, "runs": {"mixed_attention-n2v_s42": {"x": 1}}}))
    jobs = ("04_train_model_mixed_attention-n2v_s42", "09_kd_e16_soft_s42", "09_kd_e16_rd_s42")
    for results, seconds in ((old, (100.0, 100.0, 100.0)), (new, (200.0, 300.0, 400.0))):
        (results / "benchmarks").mkdir()
        for job, s in zip(jobs, seconds):
            (results / "benchmarks" / f"{job}.tsv").write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:00\t512.0\n")
    build_digest(old, digest, config)
    write_run(new, "mixed_attention-n2v", 42, level(0.35))
    update_digest(new, digest, config, ["mixed_attention-n2v"])
    assert stale_note(load_digest(digest).provenance, "kd") and stale_note(load_digest(digest).provenance, "relatedness")

    with pytest.raises(FileNotFoundError, match="e16/soft"):
        update_digest(new, digest, config, ["mixed_attention-n2v", "e16/soft"])
    _write_kd(new, "e16", "soft", 42, 0.25)
    for other in ({"k": 20}, {"popularity": {"kg_neighbour_share": 0.01}}):  # another cut-off; other seed items
        (new / "claims" / "relatedness.json").write_text(json.dumps({**checked, **other, "runs": {}}))
        with pytest.raises(ValueError, match="other seed items"):
            update_digest(new, digest, config, ["mixed_attention-n2v", "e16/soft"])
    (new / "claims" / "relatedness.json").write_text(json.dumps({**checked, "runs": {"mixed_attention-n2v_s42": {"x": 2}}}))
    update_digest(new, digest, config, ["mixed_attention-n2v", "e16/soft"])

    after = load_digest(digest)
    by_method = after.kd.set_index("method")["MRR"]
    assert by_method["soft"] == pytest.approx(level(0.25)["MRR"]) and by_method["rd"] == pytest.approx(level(0.2)["MRR"])
    assert after.relatedness == {**checked, "runs": {"mixed_attention-n2v_s42": {"x": 2}}}
    latest = after.provenance["updates"][-1]
    assert latest["groups"] == ["mixed_attention-n2v", "e16/soft"]
    assert latest["refreshed"] == {"kd": ["e16/soft"], "relatedness": ["mixed_attention-n2v_s42"]}
    assert latest["stale"] == {"kd": ["e16/rd"]}  # taught by the teacher, not made again
    # the updated groups' job times are the fresh ones; e16/rd's stay the committed ones
    assert after.stages.set_index("job").loc[list(jobs), "seconds"].tolist() == [200.0, 300.0, 100.0]
    assert stale_note(after.provenance, "relatedness") is None
    assert stale_note(after.provenance, "kd") == (
        "Not rerun: the toolkit runs e16/rd learnt from the earlier runs of mixed_attention-n2v, retrained since "
        "in a digest update whose runs the leaderboard shows.")  # named once, by the latest update
