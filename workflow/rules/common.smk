# Shared helpers: where outputs go and how a notebook is run. No experiment logic here.

import json
import os
import sys
from pathlib import Path

from recpress_utils import config as settings
from recpress_utils.data.presplit import SRGNN_DATASETS
from recpress_utils.report.digest import digest_files
from recpress_utils.models import uses_kg

PY = sys.executable  # the interpreter running Snakemake: works without an activated venv
DATASET = config["dataset"]
PRESPLIT = DATASET in SRGNN_DATASETS  # published splits (SR-GNN): no raw events to prepare
OUT = settings.results_folder(config)
PAPERMILL = f"{PY} -m papermill -k python3 --no-progress-bar --log-output"

#: The committed profile this run is (same effective config, compared by hash), or None: only a
#: published profile's run writes into reports/; any other run keeps its report in OUT/report/.
PUBLISHED = settings.published_profile(config)
PUBLISHED_FOLDER = settings.published_folder(config, PUBLISHED or settings.CONFIG_FILE)
REPORT_NOTEBOOK = settings.report_notebook(config)


def nb_params(**params):
    """Notebook parameters as one JSON (= YAML) string for papermill's -y.

    Rules build it in a function of the wildcards only, never of ``input``: Snakemake records a
    param for its rerun trigger only then (snakemake/snakemake#3895), and a changed setting
    (say `train.epochs`) must rerun the jobs it reaches. The thread count is not among them: the
    job passes its own (NOTEBOOK), so a cluster job uses the threads it was given."""
    params.pop("threads", None)
    return json.dumps(params, sort_keys=True)


#: How every stage's notebook runs: papermill with the rule's parameters, then the job's own
#: thread count (`-p` wins over `-y`).
NOTEBOOK = "{params.papermill} {input.notebook} {output.notebook} -y {params.nb:q} -p threads {threads} 2> {log}"
#: The same for a notebook that also sizes itself to the job's memory (prepare_data: DuckDB's limit).
NOTEBOOK_MEMORY = NOTEBOOK.replace(" 2> {log}", " -p memory_mb {resources.mem_mb} 2> {log}")
#: What each job asks a cluster scheduler for (config `resources`, sized per profile): memory (MB)
#: and runtime (minutes) of the cheap jobs, the training jobs (and their GPUs) and the benchmarks.
RESOURCES = config["resources"]


def model_spec(name):
    """The config's ``models`` entry of ``name``, validated (typos fail before any job runs)."""
    return settings.model_spec(config, name)


def reads_kg(name):
    """Whether model ``name`` reads the knowledge graph's neighbour tables."""
    return uses_kg(model_spec(name).architecture)
#: The paper's experiments (its models, the students, latency, relatedness); with
#: `paper: false` only the peers are trained and reported (e.g. checking them on MovieLens).
PAPER = config["paper"]
#: The seeds of the paper's stages (`paper_seeds`, a subset of `seeds`; all of them by default).
PAPER_SEEDS = settings.paper_seeds(config)
#: The paper's four models: Baseline and Mixed Attention, each without and with Node2Vec.
PAPER_RUNS = [
    f"{model}{n2v}_s{seed}"
    for model in ("baseline", "mixed_attention")
    for n2v in ("", "-n2v")
    for seed in PAPER_SEEDS
] if PAPER else []

#: Peers beyond the paper (popularity, GRU4Rec, SASRec with three losses, BERT4Rec), every seed.
PEERS = {name: model_spec(name) for name in config["peers"]}
PEER_RUNS = [f"{name}_s{seed}" for name in PEERS for seed in config["seeds"]]

#: The teacher the student learns from (the paper's best: Mixed Attention + Node2Vec), a setting:
#: every consumer (distillation, latency, relatedness, report) reads it from here.
TEACHER_RUN, TEACHER_MODEL, TEACHER_NAME = settings.teacher_run(config)
#: The distilled students train with the student's own settings, as the hard-label student
#: does, so "what distillation adds" differs in nothing else.
STUDENT_TRAIN = settings.student_train(config)
STUDENT_RUNS = [
    f"student-T{temperature:g}_s{seed}"
    for temperature in config["distill"]["temperatures"]
    for seed in PAPER_SEEDS
] + [f"student_s{seed}" for seed in PAPER_SEEDS] if PAPER else []  # hard labels: what distillation adds

#: What the latency benchmark times (first seed's checkpoints), by display name.
_SEED0 = PAPER_SEEDS[0]
BENCHMARK_NAMES, BENCHMARK_RUNS = settings.benchmark_runs(config)

#: Runs whose top items after a seed item are checked for relatedness (claim C6): the KG-aware
#: models against the non-KG ones (LSTM baseline, SASRec when it is a peer), paired by seed.
RELATEDNESS_RUNS = PAPER_RUNS + [
    f"student-T{config['benchmark']['student_temperature']:g}_s{seed}" for seed in PAPER_SEEDS
] + ([f"sasrec_s{seed}" for seed in PAPER_SEEDS] if PAPER and "sasrec" in PEERS else [])


#: Every run the report reads.
ALL_RUNS = PAPER_RUNS + PEER_RUNS + STUDENT_RUNS

#: The distillation toolkit's runs, ``kd/<size>/<method>_s<seed>``: each method of `kd.methods`
#: and the no-KD control, at every student size and seed (`kd.seeds`; none without methods).
KD_RUNS = settings.kd_runs(config)
KD_CONTROL = settings.KD_CONTROL
#: The toolkit's first student seed: its no-KD controls are the students timed per size.
KD_SEED0 = settings.kd_seeds(config)[0] if KD_RUNS else _SEED0


#: What a dataset's digest holds (recpress_utils.report.digest); latency and relatedness only with `paper`.
DIGEST_FILES = digest_files(PAPER, bool(KD_RUNS))


def report_inputs(wildcards):
    """The digest reads every run, the data statistics, and the paper stages' latency and relatedness."""
    inputs = {"runs": [f"{OUT}/runs/{run}/metrics.json" for run in ALL_RUNS],
              "kd": [f"{OUT}/{run}/metrics.json" for run in KD_RUNS],
              "kd_latency": [f"{OUT}/kd/latency.json"] if KD_RUNS else [],
              "stats": f"{OUT}/prepared/stats.json"}
    if PAPER:
        inputs["latency"] = f"{OUT}/benchmark/latency.json"
        inputs["relatedness"] = f"{OUT}/claims/relatedness.json"
    return inputs


def final_outputs():
    """What `snakemake` builds by default: every stage's outputs and rendered notebook."""
    stages = ["01_prepare_data"] + (["02_build_kg", "06_benchmark"] if PAPER else [])
    stages += [f"03_node2vec_s{seed}" for seed in PAPER_SEEDS] if PAPER else []
    trained = PAPER_RUNS + PEER_RUNS + [run for run in STUDENT_RUNS if "-T" not in run]
    stages += [f"04_train_model_{run}" for run in trained]
    stages += [f"05_distill_{run.removeprefix('student-')}" for run in STUDENT_RUNS if "-T" in run]
    stages += ["09_kd_" + "_".join(Path(run).parts[1:]) for run in KD_RUNS]
    outputs = [
        f"{OUT}/report/index.html",
        f"{OUT}/prepared/stats.json",
        *[f"{OUT}/runs/{run}/metrics.json" for run in ALL_RUNS],
        *[f"{OUT}/{run}/metrics.json" for run in KD_RUNS],
        *([f"{OUT}/kd/latency.json"] if KD_RUNS else []),
        *[f"{OUT}/notebooks/{stage}.html" for stage in stages],
    ]
    if PAPER:
        outputs += [f"{OUT}/claims/relatedness.json", f"{OUT}/benchmark/latency.json",
                    f"{OUT}/kg/kg_stats.json",
                    *[f"{OUT}/embeddings/s{seed}/node2vec_stats.json" for seed in PAPER_SEEDS]]
    if PUBLISHED:  # the committed reports describe the published profiles' runs only
        outputs += [*settings.report_pages(config, PUBLISHED), *settings.FRONT_PAGE[1:]]
    return outputs


def train_inputs(wildcards):
    """A run reads the splits, plus the KG tables and Node2Vec vectors when it uses them."""
    inputs = {
        "notebook": "notebooks/04_train_model.ipynb",
        "train": f"{OUT}/prepared/train.parquet",
        "valid": f"{OUT}/prepared/valid.parquet",
        "test": f"{OUT}/prepared/test.parquet",
        "vocab": f"{OUT}/prepared/items.parquet",
    }
    if reads_kg(wildcards.model):
        inputs["neighbors"] = f"{OUT}/kg/neighbors.pt"
    if wildcards.n2v:  # each seed's own Node2Vec walks
        inputs["embeddings"] = f"{OUT}/embeddings/s{wildcards.seed}/node2vec.pt"
    return inputs


def raw_events(wildcards):
    """The raw CSV(s) the prepare stage reads."""
    try:
        return settings.raw_events(config)
    except ValueError as e:
        raise WorkflowError(str(e)) from e


def kd_inputs(wildcards):
    """A toolkit run reads the splits, its teachers' checkpoints of the same seed (not a peer trained
    alongside: method mutual) and the KG tables when a teacher reads them."""
    inputs = {
        "notebook": "notebooks/09_kd.ipynb",
        "train": f"{OUT}/prepared/train.parquet",
        "valid": f"{OUT}/prepared/valid.parquet",
        "test": f"{OUT}/prepared/test.parquet",
        "vocab": f"{OUT}/prepared/items.parquet",
    }
    teachers = settings.kd_teachers(config, wildcards.method, wildcards.size, int(wildcards.seed))
    if not settings.kd_online(config, wildcards.method):
        inputs["teachers"] = [teacher["checkpoint"] for teacher in teachers]
    if any(teacher["neighbors_path"] for teacher in teachers):
        inputs["neighbors"] = f"{OUT}/kg/neighbors.pt"
    if caches := [c for c in settings.kd_teacher_caches(config, wildcards.method, teachers) if c]:
        inputs["caches"] = caches
    return inputs


def distill_inputs(wildcards):
    """A distillation run reads the splits, the teacher's checkpoint and its KG tables."""
    inputs = {
        "notebook": "notebooks/05_distill.ipynb",
        "train": f"{OUT}/prepared/train.parquet",
        "valid": f"{OUT}/prepared/valid.parquet",
        "test": f"{OUT}/prepared/test.parquet",
        "teacher": f"{OUT}/runs/{TEACHER_RUN}_s{wildcards.seed}/model.pt",
    }
    if reads_kg(TEACHER_MODEL):
        inputs["neighbors"] = f"{OUT}/kg/neighbors.pt"
    if cache := settings.teacher_cache_file(config, inputs["teacher"]):
        inputs["cache"] = cache
    return inputs


def teacher_cache_inputs(wildcards):
    """A teacher cache reads the training split, the teacher's checkpoint and its KG tables."""
    teacher = settings.teacher_record(config, wildcards.group, int(wildcards.seed))
    inputs = {"train": f"{OUT}/prepared/train.parquet", "teacher": teacher["checkpoint"]}
    if teacher["neighbors_path"]:
        inputs["neighbors"] = teacher["neighbors_path"]
    return inputs


def benchmark_inputs(wildcards):
    """The checkpoints to time, the KG (tables and graph file) and the notebook."""
    inputs = {
        "notebook": "notebooks/06_benchmark.ipynb",
        "neighbors": f"{OUT}/kg/neighbors.pt",
        "graph": f"{OUT}/kg/graph.parquet",
        "test": f"{OUT}/prepared/test.parquet",
    }
    for name, run_dir in BENCHMARK_RUNS.items():
        inputs[name] = f"{run_dir}/model.pt"
    return inputs


def relatedness_inputs(wildcards):
    """Every checked run's checkpoint, plus the KG."""
    inputs = {"graph": f"{OUT}/kg/graph.parquet", "neighbors": f"{OUT}/kg/neighbors.pt"}
    for run in RELATEDNESS_RUNS:
        inputs[run] = f"{OUT}/runs/{run}/model.pt"
    return inputs
