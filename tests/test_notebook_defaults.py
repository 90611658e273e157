"""One source of defaults: a notebook run by hand uses the pipeline's settings.

Fast checks: ``recpress_utils.config.load_config`` builds the dict Snakemake builds, and
``resolve`` gives every notebook the parameters its rule passes. Pipeline checks: each notebook
01-06 run stand-alone with papermill (``-p profile <tiny profile>``, nothing else) records the
same settings as the pipeline's run of the same stage, model and seed.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import papermill
import pytest
import yaml

from recpress_utils import config as rc
from recpress_utils.paths import REPO_ROOT

TINY = "config/tiny.yaml"
NOTEBOOKS = REPO_ROOT / "notebooks"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
#: Parameters of the notebook's stage whose pipeline job is identified by them (the rest follow).
IDENTITY = {"03_node2vec": ("seed",), "04_train_model": ("model", "node2vec", "seed"),
            "05_distill": ("temperature", "seed"), "09_kd": ("size", "method", "seed")}


def _profile(tmp_path: Path, results: Path, **settings) -> Path:
    """The tiny profile with its results folder moved to ``results`` (and ``settings`` over it)."""
    profile = yaml.safe_load((REPO_ROOT / TINY).read_text())
    profile.update(results_dir=str(results), **settings)
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(profile))
    return path


def _snakemake(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=REPO_ROOT, capture_output=True, text=True)


# --- fast: the config and the parameters ---------------------------------------------------------

def test_load_config_default_is_the_pipelines():
    cfg = rc.load_config()
    assert cfg["train"]["epochs"] == 10 and cfg["train"]["lr"] == 0.003  # not the dataclass's 20 / 1e-3
    assert cfg["results_dir"] == "results" and cfg["seeds"] == [42, 43, 44]


def test_profile_is_merged_key_by_key():
    base = yaml.safe_load((REPO_ROOT / "config" / "config.yaml").read_text())
    cfg = rc.load_config(TINY)
    assert cfg["train"] == {**base["train"], "epochs": 2, "batch_size": 128, "patience": 1}
    assert cfg["train"]["lr"] == 0.003  # from config.yaml, under tiny's keys
    assert cfg["prepare"] == {**base["prepare"], "min_item_support": 3}
    assert cfg["models"]["bert4rec"] == {"loss_settings": {"mask_prob": 0.5}, "settings": {"dropout": 0.1},
                                         "train": {"epochs": 2, "patience": 1, "lr": 0.006}}
    assert cfg["results_dir"] == "results/tiny" and cfg["seeds"] == [42]
    assert rc.train_settings(cfg, "bert4rec").epochs == 2 and rc.train_settings(cfg, "sasrec").lr == 0.003


def test_load_config_equals_snakemakes(tmp_path):
    """The dict the Snakefile validates (dumped by a Snakefile including it) is load_config's."""
    dump = tmp_path / "config.json"
    snakefile = tmp_path / "Snakefile"
    snakefile.write_text(f'include: "{REPO_ROOT / "Snakefile"}"\n\n\n'
                         f'import json as _json\n\nopen("{dump}", "w").write(_json.dumps(config))\n')
    proc = _snakemake("-s", str(snakefile), "-d", str(REPO_ROOT), "--configfile", TINY,
                      "--config", "results_dir=elsewhere", "threads=3", "--list-rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads(dump.read_text())
    assert rc.load_config(TINY, {"results_dir": "elsewhere", "threads": 3}) == expected


def test_unknown_profile_key_is_named(tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epochz: 3\n")
    with pytest.raises(ValueError, match="epochz") as error:
        rc.load_config(typo)
    assert "typo.yaml" in str(error.value) and "at train" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no/such.yaml"):
        rc.load_config("no/such.yaml")


@pytest.mark.parametrize("stage", sorted(rc.STAGES))
def test_notebook_settings_default_to_the_config(stage):
    """Every parameter of a notebook is its rule's, plus ``profile``, and defaults to None."""
    params = papermill.inspect_notebook(str(NOTEBOOKS / f"{stage}.ipynb"))
    assert set(params) == {"profile", *rc.STAGES[stage][0]}
    assert params.pop("profile")["default"] == '""'
    assert {name: p["default"] for name, p in params.items()} == dict.fromkeys(params, "None")


def test_resolve_gives_every_pipeline_job_its_parameters(tmp_path):
    """For every notebook job of a tiny dry run, resolve (given only the job's identity: model,
    seed, temperature) returns exactly the parameters the rule passes."""
    profile = _profile(tmp_path, tmp_path / "results")
    # --cores 2: a job's threads are capped by the cores given (the benchmark asks for 2)
    proc = _snakemake("--configfile", str(profile), "--cores", "2", "-n", "-p", "--forceall", "--nolock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = []
    for line in (proc.stdout + proc.stderr).splitlines():
        if "papermill" in line and " -y " in line:
            words = shlex.split(line.split("Shell command:", 1)[-1])
            stage = Path(next(w for w in words if re.fullmatch(r"notebooks/0\d_\w+\.ipynb", w))).stem
            passed = json.loads(words[words.index("-y") + 1])
            assert "threads" not in passed, "the job's own thread count is passed with -p, never in the params"
            # the job's own values: its thread count, and (prepare) its memory
            own = {words[i + 1]: int(words[i + 2]) for i, w in enumerate(words) if w == "-p"}
            assert "threads" in own and set(own) <= {"threads", "memory_mb"}
            assert ("memory_mb" in own) == (stage == "01_prepare_data")
            jobs.append((stage, {**passed, **own}))
    assert {stage for stage, _ in jobs} == set(rc.STAGES) | {"07_report"}
    for stage, passed in jobs:
        if stage not in rc.STAGES:
            continue
        identity = {name: passed[name] for name in IDENTITY.get(stage, ())}
        resolved = rc.resolve(stage, identity, profile, verbose=False)
        unpassed = sorted(set(resolved) - set(passed))
        assert not unpassed, (f"the rule running {stage} does not pass {unpassed}: the notebook would read "
                              "them from config/config.yaml alone, not from the run's profile")
        assert resolved == passed, (stage, identity)


def test_resolve_keeps_given_values_without_reading_the_config():
    given = {"temperature": 2.0, "hard_weight": 0.5, "top_k": 100, "negatives": {"n_negatives": 64}, "seed": 7, "prepared_dir": "p", "teacher_model": "baseline",
             "teacher_kwargs": {}, "teacher_checkpoint": "t.pt", "neighbors_path": "", "teacher_cache": "", "run_dir": "r",
             "student_kwargs": {"dropout": 0.1}, "train": {}, "threads": 3, "unrelated": 1}
    expected = {k: v for k, v in given.items() if k != "unrelated"}
    assert rc.resolve("05_distill", given, profile="no/such/profile.yaml") == expected


def test_paths_follow_a_value_given_by_hand():
    p = rc.resolve("04_train_model", {"model": "bert4rec", "seed": 43}, TINY, verbose=False)
    assert p["node2vec"] is False and p["neighbors_path"] == "" and p["node2vec_path"] == ""
    assert p["run_dir"] == "results/tiny/synthetic/runs/bert4rec_s43"
    assert p["spec"] == {"loss_settings": {"mask_prob": 0.5}, "settings": {"dropout": 0.1},
                         "train": {"epochs": 2, "patience": 1, "lr": 0.006}}
    teacher = rc.resolve("04_train_model", {}, TINY, verbose=False)
    assert (teacher["model"], teacher["node2vec"]) == ("mixed_attention", True)
    assert teacher["node2vec_path"] == "results/tiny/synthetic/embeddings/s42/node2vec.pt"
    assert rc.resolve("03_node2vec", {"seed": 44}, None, verbose=False)["emb_dir"] == "results/synthetic/embeddings/s44"



def test_paper_seeds_default_to_every_seed_and_must_be_among_them():
    assert rc.paper_seeds(rc.load_config()) == [42, 43, 44]
    cfg = rc.load_config(TINY, {"seeds": [42, 43], "paper_seeds": [43]})
    assert rc.paper_seeds(cfg) == [43]
    assert rc.benchmark_runs(cfg)[1]["Baseline"].endswith("runs/baseline_s43")
    with pytest.raises(ValueError, match=r"paper_seeds \[44\] are not among seeds \[42, 43\]"):
        rc.paper_seeds(rc.load_config(TINY, {"seeds": [42, 43], "paper_seeds": [43, 44]}))


def test_the_budget_rule_trains_the_paper_at_its_seeds_and_the_peers_at_every_seed(tmp_path):
    """A dry run with ``paper_seeds: [43]`` of ``seeds: [42, 43]``: Node2Vec, the paper's models, the
    students and the distillation toolkit at 43 only; every peer at both."""
    profile = _profile(tmp_path, tmp_path / "results", seeds=[42, 43], paper_seeds=[43])
    proc = _snakemake("--configfile", str(profile), "--cores", "2", "-n", "--forceall", "--nolock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = set(re.findall(r"/(runs|embeddings|kd/\w+)/([\w.-]+?)_?s(4[23])\b", proc.stdout + proc.stderr))
    seeds_of: dict[str, set[str]] = {}
    for where, run, seed in outputs:
        seeds_of.setdefault(f"{where}/{run}".rstrip("/"), set()).add(seed)
    paper = {k: v for k, v in seeds_of.items() if k.startswith(("runs/baseline", "runs/mixed_attention", "runs/student",
                                                                 "embeddings", "kd/"))}
    peers = {k: v for k, v in seeds_of.items() if k.startswith(("runs/popularity", "runs/gru4rec", "runs/sasrec"))}
    assert paper and all(v == {"43"} for v in paper.values()), paper
    assert peers and all(v == {"42", "43"} for v in peers.values()), peers

# --- pipeline: each notebook run stand-alone against the pipeline's own run --------------------

@pytest.fixture(scope="module")
def pipeline(tiny_run) -> Path:
    """The tiny pipeline's ``<results>/synthetic`` (conftest's session-wide run)."""
    return tiny_run


def _standalone(stage: str, pipeline: Path, tmp_path: Path, inputs: list[str], *params: str) -> Path:
    """Copy ``inputs`` (paths under the results folder) from the pipeline's run, run notebook
    ``stage`` with only ``-p profile`` (and ``params``), and return its results folder."""
    out = tmp_path / "results" / "synthetic"
    for rel in inputs:
        src, dst = pipeline / rel, out / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
    profile = _profile(tmp_path, tmp_path / "results")
    proc = subprocess.run(
        [sys.executable, "-m", "papermill", "-k", "python3", "--no-progress-bar",
         str(NOTEBOOKS / f"{stage}.ipynb"), str(tmp_path / f"{stage}.ipynb"), "-p", "profile", str(profile),
         *params], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def _recorded(path: Path, root: Path, keys: list[str]) -> dict:
    """``keys`` of the JSON at ``path`` (a dotted key reads a nested one), paths under
    ``root`` written relative to it, so two results folders compare."""
    data = json.loads(path.read_text().replace(str(root), "<results>"))
    picked = {}
    for key in keys:
        value = data
        for part in key.split("."):
            value = value[part]
        picked[key] = value
    return picked


def _same_settings(pipeline: Path, standalone: Path, rel: str, keys: list[str]) -> None:
    ours, theirs = _recorded(standalone / rel, standalone, keys), _recorded(pipeline / rel, pipeline, keys)
    assert ours == theirs


RUN_SETTINGS = ["model", "display_name", "node2vec", "model_kwargs", "spec", "seed", "threads", "train_config"]


@pytest.mark.pipeline
def test_prepare_data_standalone(pipeline, tmp_path):
    """Stand-alone, it also generates the synthetic events as rule synthetic_events does."""
    out = _standalone("01_prepare_data", pipeline, tmp_path, [])
    assert (out / "raw" / "events.csv").read_bytes() == (pipeline / "raw" / "events.csv").read_bytes()
    _same_settings(pipeline, out, "prepared/stats.json", ["config", "items", "splits", "time_cuts"])


@pytest.mark.pipeline
def test_build_kg_standalone(pipeline, tmp_path):
    out = _standalone("02_build_kg", pipeline, tmp_path, ["prepared"])
    _same_settings(pipeline, out, "kg/kg_stats.json", ["config", "edges"])


@pytest.mark.pipeline
def test_node2vec_standalone(pipeline, tmp_path):
    out = _standalone("03_node2vec", pipeline, tmp_path, ["prepared", "kg"])
    _same_settings(pipeline, out, "embeddings/s42/node2vec_stats.json",
                   ["config", "seed", "numba_threads", "shape"])


@pytest.mark.pipeline
def test_train_model_standalone(pipeline, tmp_path):
    """Defaults: the teacher run (Mixed Attention + Node2Vec, KG tables, first seed)."""
    out = _standalone("04_train_model", pipeline, tmp_path, ["prepared", "kg", "embeddings/s42"])
    _same_settings(pipeline, out, "runs/mixed_attention-n2v_s42/metrics.json", RUN_SETTINGS)


@pytest.mark.pipeline
def test_train_model_standalone_with_model_overrides(pipeline, tmp_path):
    """A model picked by hand gets its own config entry (BERT4Rec's train overrides)."""
    out = _standalone("04_train_model", pipeline, tmp_path, ["prepared"], "-p", "model", "bert4rec")
    _same_settings(pipeline, out, "runs/bert4rec_s42/metrics.json", RUN_SETTINGS)


@pytest.mark.pipeline
def test_distill_standalone(pipeline, tmp_path):
    out = _standalone("05_distill", pipeline, tmp_path, ["prepared", "kg", "runs/mixed_attention-n2v_s42"])
    _same_settings(pipeline, out, "runs/student-T1_s42/metrics.json",
                   ["model", "model_kwargs", "temperature", "hard_weight", "teacher", "seed", "threads",
                    "train_config"])


@pytest.mark.pipeline
def test_benchmark_standalone(pipeline, tmp_path):
    runs = [f"runs/{Path(run).name}" for run in rc.benchmark_runs(rc.load_config(TINY))[1].values()]
    out = _standalone("06_benchmark", pipeline, tmp_path, ["prepared", "kg", *runs])
    _same_settings(pipeline, out, "benchmark/latency.settings.json",
                   ["runs", "teacher", "baseline", "student", "threads", "repeats", "n_single",
                    "catalogue_sizes", "data_seed"])
    _same_settings(pipeline, out, "benchmark/latency.json",
                   ["threads", "n_requests", "n_items", "runs", "catalogue_scaling.sizes",
                    "catalogue_scaling.repeats"])


def test_a_sampled_student_pool_without_the_teacher_cache_is_refused(tmp_path):
    profile = tmp_path / "pool.yaml"
    profile.write_text("distill:\n  negatives: {n_negatives: 64}\n")
    with pytest.raises(ValueError, match="top_k") as error:
        rc.load_config(profile)
    assert "pool.yaml" in str(error.value)
    profile.write_text("distill:\n  top_k: 20\n  negatives: {n_negatives: 64}\n")
    assert rc.load_config(profile)["distill"]["negatives"] == {"n_negatives": 64}
