"""Snakemake end to end on the tiny profile, config validation, and the linter."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from recpress_utils.paths import REPO_ROOT
from tests.conftest import RETRY, TINY_SUBSET, tiny_subset

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PEERS = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())["peers"]


def _snakemake(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=check)


@pytest.mark.pipeline
def test_tiny_profile_prepares_data(tiny_run):
    for name in ("train", "valid", "test", "items"):
        assert not pd.read_parquet(tiny_run / "prepared" / f"{name}.parquet").empty, name
    stats = json.loads((tiny_run / "prepared" / "stats.json").read_text())
    assert stats["items"] > 50
    assert (tiny_run / "notebooks" / "01_prepare_data.ipynb").exists()
    html = (tiny_run / "notebooks" / "01_prepare_data.html").read_text()
    assert "<img" in html or "image/png" in html, "the rendered notebook shows its figures"
    assert (tiny_run / "benchmarks" / "01_prepare_data.tsv").exists()
    assert not (tiny_run / "prepared" / "events.parquet").exists(), "the intermediate is temporary"


@pytest.mark.pipeline
def test_tiny_profile_runs_every_stage(tiny_run):
    kg = json.loads((tiny_run / "kg" / "kg_stats.json").read_text())
    assert kg["edges"]["co_view"] > 0
    assert (tiny_run / "embeddings" / "s42" / "node2vec.pt").exists(), "each seed draws its own walks"
    runs = sorted(p.parent.name for p in (tiny_run / "runs").glob("*/metrics.json"))
    assert runs == sorted([
        "baseline_s42", "baseline-n2v_s42", "mixed_attention_s42", "mixed_attention-n2v_s42",
        "student-T0.5_s42", "student-T1_s42", "student-T2_s42", "student-T5_s42", "student_s42",
        *(f"{peer}_s42" for peer in PEERS),
    ])
    for run in runs:
        m = json.loads((tiny_run / "runs" / run / "metrics.json").read_text())
        assert 0 < m["test"]["NDCG@10"] <= 1, run
    latency = json.loads((tiny_run / "benchmark" / "latency.json").read_text())
    assert len(latency["models"]) == 4 + len(PEERS) and latency["floor"]["product_topk"]["median"] > 0
    assert {r["n_items"] for r in latency["catalogue_scaling"]["records"]} == {500, 2000}
    digest = pd.read_csv(tiny_run / "digest" / "digest.csv")
    assert {"model", "seed", "NDCG@10", "best_epoch", "last_epoch", "seconds_per_epoch"} <= set(digest.columns)
    assert len(digest) == len(runs)
    assert (tiny_run / "claims" / "relatedness.json").exists()
    report = (tiny_run / "report" / "index.html").read_text()
    assert "Tables 2-3" in report and "The claims" in report
    htmls = {p.stem for p in (tiny_run / "notebooks").glob("*.html")}
    assert {"02_build_kg", "03_node2vec_s42", "06_benchmark", "05_distill_T1_s42",
            "04_train_model_mixed_attention-n2v_s42", "04_train_model_popularity_s42"} <= htmls
    popularity = json.loads((tiny_run / "runs" / "popularity_s42" / "metrics.json").read_text())
    assert popularity["epochs_run"] == 0 and popularity["spec"]["loss"] == "counts"
    bert = json.loads((tiny_run / "runs" / "bert4rec_s42" / "metrics.json").read_text())
    assert bert["spec"]["loss"] == "masked_item" and bert["display_name"] == "BERT4Rec (masked items)"


@pytest.mark.pipeline
def test_rerun_is_a_no_op(tiny_run):
    proc = _snakemake("--cores", "1", "--configfile", "config/tiny.yaml",
                      "--config", f"results_dir={tiny_run.parent}", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_bad_config_key_fails_at_start():
    proc = _snakemake("-n", "--config", "min_item_suport=3", check=False)
    assert proc.returncode != 0
    assert "min_item_suport" in proc.stderr + proc.stdout


def test_bad_config_value_fails_at_start():
    proc = _snakemake("-n", "--config", "dataset=imdb", check=False)
    assert proc.returncode != 0
    assert "imdb" in proc.stderr + proc.stdout


def test_rees46_needs_a_data_path():
    proc = _snakemake("-n", "--config", "dataset=rees46", check=False)
    assert proc.returncode != 0


#: The one lint the workflow answers otherwise: every job runs the checkout's own interpreter (the
#: venv of `make setup`; on a cluster, that venv on a shared filesystem), so no rule names a conda
#: environment it would not use (a `conda:` directive that does nothing; README, "On a SLURM cluster").
SOFTWARE_LINT = "Specify a conda environment or container for each rule."


def test_snakemake_lint_is_clean_but_for_the_software_deployment_lint():
    proc = _snakemake("--lint", check=False)
    out = proc.stdout + proc.stderr
    titles = [line.strip()[2:].rstrip(":") for line in out.splitlines() if line.strip().startswith("* ")]
    assert titles, out[-3000:]  # the software lint is expected on every rule
    assert set(titles) == {SOFTWARE_LINT}, out[-3000:]


def test_peers_only_profile_plans_no_paper_stage():
    proc = _snakemake("--configfile", "config/tiny.yaml", "--config", "paper=False", "-n", "--quiet", "rules", "--nolock")
    planned = proc.stdout
    assert "train_model" in planned and "report" in planned
    for rule in ("build_kg", "node2vec", "distill", "latency", "relatedness"):
        assert rule not in planned.split(), rule


@pytest.mark.pipeline
def test_a_peers_only_profile_reports_its_peers_beside_the_published_numbers(tiny_run, tmp_path):
    """`paper: false` (the real-data profiles) renders the peers' report: our runs beside the
    published ones of the dataset (ML-100k: UniRec's SASRec), the convergence table, the costs."""
    import papermill

    from recpress_utils.config import load_config, report_notebook
    from recpress_utils.report.digest import build_digest

    results = tmp_path / "ml"
    for peer in PEERS:
        shutil.copytree(tiny_run / "runs" / f"{peer}_s42", results / "runs" / f"{peer}_s42")
    shutil.copytree(tiny_run / "benchmarks", results / "benchmarks")  # the rules' wall times
    shutil.copytree(tiny_run / "prepared", results / "prepared")
    config = load_config("config/tiny.yaml", {"dataset": "ml-100k", "paper": False})
    build_digest(results, tmp_path / "digest", config)
    out = tmp_path / "report.ipynb"
    papermill.execute_notebook(str(REPO_ROOT / report_notebook(config)), str(out), kernel_name="python3",
                               parameters={"digest_dir": str(tmp_path / "digest")}, progress_bar=False)
    text = out.read_text()
    assert "Protocol check" in text and "SASRec (full CE)" in text and "UniRec" in text
    assert "best_epoch" in text and "max_rss_mb" in text


def _planned_rules(*args: str) -> list[str]:
    """The rules of the whole DAG (--forceall: whatever has already run on this machine)."""
    return _snakemake(*args, "-n", "--forceall", "--quiet", "rules", "--nolock", "--rerun-incomplete").stdout.split()


def test_one_teacher_seed_trains_and_caches_one_teacher_for_every_student_seed(tmp_path):
    """`kd.teacher_seed`: the toolkit's students at three seeds read the teachers of seed 42 and
    their one top-K cache; no teacher is trained at the other seeds."""
    profile = tiny_subset(tmp_path / "one_teacher.yaml", **{**TINY_SUBSET, "seeds": [42, 43, 44], "paper_seeds": [42],
                          "distill": {"top_k": 20}, "kd": {**TINY_SUBSET["kd"], "seeds": [42, 43, 44], "teacher_seed": 42}})
    plan = _snakemake("--configfile", str(profile), "-n", "--forceall", "--nolock").stdout
    assert "kd/e16/soft_s44/metrics.json" in plan and "kd/e16/dml_s43/metrics.json" in plan
    assert "teacher_cache/mixed_attention-n2v_s42.pt" in plan
    for unwanted in ("runs/mixed_attention-n2v_s43", "runs/mixed_attention-n2v_s44", "teacher_cache/mixed_attention-n2v_s43"):
        assert unwanted not in plan, unwanted


def test_only_the_published_profiles_publish_into_reports(tmp_path):
    """reports/ holds the default run and the real-data profiles' runs: a run with any other
    config keeps its report in results/."""
    assert "publish_report" in _planned_rules()
    assert "publish_report" in _planned_rules("--configfile", "config/diginetica.yaml")
    one_seed = tmp_path / "one_seed.yaml"
    # [] = every seed: profiles that set paper_seeds too; and the toolkit's teachers and students move
    # with them (Diginetica's kd reads the teachers of seed 42, which this run does not train)
    one_seed.write_text("seeds: [7]\npaper_seeds: []\nkd: {teacher_seed: 7, seeds: [7]}\n")
    assert "publish_report" not in _planned_rules("--configfile", str(one_seed))
    assert "publish_report" not in _planned_rules("--configfile", "config/diginetica.yaml", str(one_seed))
    assert "publish_report" not in _planned_rules("--configfile", "config/tiny.yaml")


@pytest.mark.pipeline
def test_the_teacher_is_a_setting_everywhere(tiny_run, tmp_path):
    """With `distill.teacher: sasrec` the students learn from SASRec, the latency benchmark and
    the claims name SASRec as the teacher, and no graph-traversal timer is built for it; the
    student's own `train` settings reach the distilled students as well as the hard-label one.
    With `distill.top_k`, SASRec's top-K is cached once, in one file for every temperature, that
    the students of all four temperatures and the toolkit's soft labels read."""
    profile = tiny_subset(tmp_path / "teacher.yaml", **TINY_SUBSET, results_dir=str(tmp_path / "results"),
                          distill={"teacher": "sasrec", "top_k": 20},
                          models={"student": {"train": {"epochs": 1}}})
    proc = _snakemake("--cores", "2", *RETRY, "--configfile", str(profile), check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = tmp_path / "results" / "synthetic"
    student = json.loads((out / "runs" / "student-T1_s42" / "metrics.json").read_text())
    assert student["teacher"]["checkpoint"].endswith("sasrec_s42/model.pt")
    toolkit = json.loads((out / "kd" / "e16" / "soft_s42" / "metrics.json").read_text())
    assert [t["checkpoint"].split("/")[-2] for t in toolkit["kd"]["teachers"]] == ["sasrec_s42"], \
        "the toolkit's methods default to the same teacher"
    cache = str(out / "teacher_cache" / "sasrec_s42.pt")
    for run in (student, *(json.loads((out / "runs" / f"student-T{t}_s42" / "metrics.json").read_text())
                           for t in ("0.5", "2", "5"))):
        assert run["teacher_cache"]["top_k"] == 20 and run["teacher_cache"]["file"] == cache
    assert toolkit["kd"]["teacher_cache"]["file"] == cache
    assert list((out / "benchmarks").glob("05_teacher_cache_*.tsv")) == [out / "benchmarks" / "05_teacher_cache_sasrec_s42.tsv"]
    hard = json.loads((out / "runs" / "student_s42" / "metrics.json").read_text())
    assert student["train_config"]["epochs"] == hard["train_config"]["epochs"] == 1, \
        "distilled and hard-label students train with the student's own settings"
    latency = json.loads((out / "benchmark" / "latency.json").read_text())
    assert "SASRec (full CE)" in latency["models"]
    assert not any("graph traversal" in name for name in latency["models"])
    report = (out / "report" / "index.html").read_text()
    assert "teacher SASRec (full CE)" in report


@pytest.mark.pipeline
def test_a_changed_setting_reruns_the_jobs_it_reaches_and_no_other(tiny_run, tmp_path):
    """Every notebook rule's parameters are tracked by Snakemake's params trigger: after the
    tiny run nothing is left to do, and a changed `train.epochs` reruns the training jobs, and
    only the jobs downstream of them."""
    results = f"results_dir={tiny_run.parent}"
    unchanged = _snakemake("--configfile", "config/tiny.yaml", "--config", results, "-n", "--nolock")
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    one_epoch = tmp_path / "one_epoch.yaml"
    one_epoch.write_text("train: {epochs: 1}\n")
    changed = _snakemake("--configfile", "config/tiny.yaml", str(one_epoch), "--config", results,
                         "-n", "--nolock", "--quiet", "rules").stdout.split()
    assert "train_model" in changed and "prepare_data" not in changed and "build_kg" not in changed
