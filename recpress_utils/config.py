"""One source of settings for the pipeline and for notebooks run by hand.

The settings live in ``config/config.yaml`` (and profiles layered over it, e.g.
``config/tiny.yaml``), checked and completed by ``workflow/schemas/config.schema.yaml``.
The pipeline passes every notebook parameter explicitly (``workflow/rules/*.smk``). A notebook
run stand-alone leaves its settings at ``None`` and :func:`resolve` fills them from the same
config, deriving paths and per-model settings the way the rules do, so a notebook tweaked in
Jupyter trains, embeds and times with the pipeline's settings.

    cfg = load_config("config/tiny.yaml")          # = snakemake --configfile config/tiny.yaml
    params = resolve("04_train_model", {"model": "sasrec"}, "config/tiny.yaml")
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Callable, Mapping

from recpress_utils.names import BASELINE, student_name
from recpress_utils.paths import REPO_ROOT, repo_path

#: The Snakefile's ``configfile`` and the schema it validates against (repository-relative).
CONFIG_FILE = "config/config.yaml"
SCHEMA_FILE = "workflow/schemas/config.schema.yaml"


def load_config(profile: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> dict:
    """``config/config.yaml``, ``profile`` merged over it, then ``overrides``; validated, defaults filled.

    The same dict as ``snakemake --configfile PROFILE --config KEY=VALUE...`` builds: Snakemake
    loads the Snakefile's configfile, merges the command line's config files and ``--config``
    over it key by key (``snakemake.utils.update_config``: nested dicts merged, anything else
    replaced), and the Snakefile calls ``snakemake.utils.validate``, which checks the schema and
    sets its defaults. Relative paths resolve against the repository root. A key the schema does
    not know (a typo) raises ``ValueError`` naming the key and the files.
    """
    import jsonschema
    from snakemake.common.configfile import load_configfile  # what `configfile:` uses
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import update_config, validate

    files = [CONFIG_FILE] + ([str(profile)] if profile else [])
    cfg: dict = {}
    for name in files:
        path = repo_path(name)
        if not path.exists():
            raise FileNotFoundError(f"config file {name} not found (looked for {path})")
        update_config(cfg, load_configfile(path))
    if overrides:
        update_config(cfg, dict(overrides))
    try:
        validate(cfg, str(repo_path(SCHEMA_FILE)))
    except WorkflowError as e:
        error = e.__context__  # validate raises WorkflowError while handling jsonschema's error
        if not isinstance(error, jsonschema.ValidationError):
            raise
        where = "/".join(map(str, error.absolute_path)) or "top level"
        raise ValueError(f"invalid config ({' + '.join(files)}{' + overrides' if overrides else ''}) "
                         f"at {where}: {error.message}") from None
    return cfg


#: Profiles whose run is committed under ``reports/<profile>/`` (digest and report page): runs too
#: long for CI, made once. The dataset profiles share their dataset's name; an experiment layered
#: over one (``yoochoose1_64-losses``) gets its own folder. The default profile's digest and page
#: go to ``reports/<dataset>/`` too; the front page, ``reports/index.html``, links them all.
PUBLISHED_PROFILES = ("config/diginetica.yaml", "config/yoochoose1_64.yaml", "config/ml-1m.yaml",
                      "config/ml-100k.yaml", "config/yoochoose1_64-losses.yaml")


def published_profile(cfg: Mapping[str, Any]) -> str | None:
    """The committed profile ``cfg`` is the effective config of (``CONFIG_FILE`` for the default),
    compared by hash; None for any other run, whose report stays under ``results/`` so that a
    one-seed experiment never overwrites what ``reports/`` states."""
    from recpress_utils.report.digest import config_hash

    target = config_hash(cfg)
    for profile in (None, *PUBLISHED_PROFILES):
        if config_hash(load_config(profile)) == target:
            return profile or CONFIG_FILE
    return None


def published_folder(cfg: Mapping[str, Any], profile: str) -> str:
    """Where published ``profile``'s digest is committed."""
    return f"reports/{cfg['dataset'] if profile == CONFIG_FILE else Path(profile).stem}"


def report_pages(cfg: Mapping[str, Any], profile: str) -> tuple[str, str]:
    """The committed report notebook and HTML page of published ``profile``."""
    folder = published_folder(cfg, profile)
    return f"{folder}/report.ipynb", f"{folder}/index.html"


#: The site's front page (claims x datasets, recpress_utils.report.site): its notebook and the
#: committed notebook and page it renders, regenerated whenever a published profile is.
FRONT_PAGE = ("notebooks/08_front_page.ipynb", "reports/index.ipynb", "reports/index.html")


def report_notebook(cfg: Mapping[str, Any]) -> str:
    """The report stage's notebook: the paper's tables and claims, or (``paper: false``) the peers
    beside their published numbers."""
    return "notebooks/07_report.ipynb" if cfg["paper"] else "notebooks/07_peers_report.ipynb"


# --- derived settings: workflow/rules/common.smk reads these same functions -----------------------

def results_folder(cfg: Mapping[str, Any]) -> str:
    """``<results_dir>/<dataset>``: where every stage writes (common.smk ``OUT``)."""
    return f"{cfg['results_dir']}/{cfg['dataset']}"


def model_spec(cfg: Mapping[str, Any], name: str):
    """The validated :class:`~recpress_utils.runs.ModelSpec` of model ``name`` (common.smk ``model_spec``)."""
    from recpress_utils.runs import ModelSpec

    return ModelSpec.from_config(name, cfg["models"].get(name, {}))


def train_settings(cfg: Mapping[str, Any], name: str):
    """The :class:`~recpress_utils.train.TrainConfig` model ``name`` trains with: the shared
    ``train`` settings with the model's own ``train`` overrides (what 04_train_model builds)."""
    return model_spec(cfg, name).train_config(cfg["train"])


def teacher_run(cfg: Mapping[str, Any]) -> tuple[str, str, str]:
    """The distillation teacher's run name (without seed), model name and display name
    (common.smk ``TEACHER_RUN``, ``TEACHER_MODEL``, ``TEACHER_NAME``)."""
    from recpress_utils.runs import teacher_of

    run, name = teacher_of(cfg)
    return run, run.removesuffix("-n2v"), name


def student_train(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The distilled students' training settings: the shared ones with the student's own
    overrides (common.smk ``STUDENT_TRAIN``)."""
    return {**cfg["train"], **model_spec(cfg, "student").train}


def paper_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The seeds of the paper's stages and of the distillation toolkit (common.smk ``PAPER_SEEDS``):
    ``paper_seeds``, or every seed when it is empty. A subset of ``seeds``, so that the peers, the
    relatedness check and the claims pair with the paper's models by seed."""
    seeds = list(cfg.get("paper_seeds") or cfg["seeds"])
    if stray := sorted(set(seeds) - set(cfg["seeds"])):
        raise ValueError(f"paper_seeds {stray} are not among seeds {list(cfg['seeds'])}: the paper's "
                         "models pair with the peers by seed, so paper_seeds must be a subset of seeds")
    return seeds


def benchmark_runs(cfg: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The latency benchmark's display names by role and its run folders by display name
    (first seed's checkpoints; common.smk ``BENCHMARK_NAMES``, ``BENCHMARK_RUNS``)."""
    out, seed0 = results_folder(cfg), paper_seeds(cfg)[0]
    temperature = cfg["benchmark"]["student_temperature"]
    teacher, _, teacher_name = teacher_run(cfg)
    names = {"baseline": BASELINE, "teacher": teacher_name, "student": student_name(temperature)}
    runs = {
        names["baseline"]: f"{out}/runs/baseline_s{seed0}",
        names["teacher"]: f"{out}/runs/{teacher}_s{seed0}",
        names["student"]: f"{out}/runs/student-T{temperature:g}_s{seed0}",
        **{model_spec(cfg, name).display_name(): f"{out}/runs/{name}_s{seed0}" for name in cfg["peers"]},
    }
    return names, runs


#: The no-KD control's name among a size's runs: the student trained with its own loss alone.
KD_CONTROL = "control"


def kd_runs(cfg: Mapping[str, Any]) -> list[str]:
    """Every run of the distillation toolkit, ``kd/<size>/<method>_s<seed>``: each configured method
    (``kd.methods``) and the no-KD control, at each student size (``kd.sizes``) and seed (common.smk
    ``KD_RUNS``). None when no method is configured, or with ``paper: false`` (the toolkit distils
    into the paper's student, from the paper's teacher by default: a peers-only run has neither)."""
    methods = list(cfg["kd"]["methods"])
    if not methods or not cfg["paper"]:
        return []
    check_kd(cfg)
    return [f"kd/{size}/{method}_s{seed}" for size in cfg["kd"]["sizes"]
            for method in [KD_CONTROL, *methods] for seed in kd_seeds(cfg)]


def kd_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The toolkit's student seeds: ``kd.seeds``, or the paper's seeds (:func:`paper_seeds`).

    Without ``kd.teacher_seed`` a run at seed s distils from the teachers trained at s, so its seeds
    must be seeds the teachers train at (``paper_seeds``). With it, every run reads the teachers of
    that one seed, and the students can run at more seeds than the teachers: a real-data profile
    whose teachers cost hours each (the budget rule trains them at one seed) still gets paired
    intervals for its methods."""
    seeds = list(cfg["kd"].get("seeds") or paper_seeds(cfg))
    teacher_seed = cfg["kd"].get("teacher_seed")
    if teacher_seed is None and (stray := sorted(set(seeds) - set(paper_seeds(cfg)))):
        raise ValueError(f"kd.seeds {stray} are not among the paper's seeds {paper_seeds(cfg)}: no teacher is "
                         "trained at them; add them to paper_seeds, or set kd.teacher_seed (one teacher seed "
                         "for every student seed)")
    if teacher_seed is not None and teacher_seed not in paper_seeds(cfg):
        raise ValueError(f"kd.teacher_seed {teacher_seed} is not among the paper's seeds {paper_seeds(cfg)}: "
                         "the teachers are trained only there")
    if teacher_seed is not None and cfg["distill"]["top_k"] is not None and student_train(cfg).get("max_windows") \
            and set(seeds) - {teacher_seed}:
        raise ValueError(f"kd.teacher_seed with train.max_windows: the teacher's top-K cache holds the prefixes of "
                         f"seed {teacher_seed}'s sample of training windows, and a student of another seed samples "
                         "others; drop max_windows (the cache then holds every window) or kd.teacher_seed")
    return seeds


def check_kd(cfg: Mapping[str, Any]) -> None:
    """Fail before any job runs, naming the entry, when a ``kd.methods`` entry names an unknown
    method, a setting the method does not take, or a teacher that is no model of the profile."""
    from recpress_utils.distill import METHODS, method_settings

    for name, entry in cfg["kd"]["methods"].items():
        where = f"kd.methods.{name}"
        if entry["method"] not in METHODS:
            raise ValueError(f"{where}: unknown method {entry['method']!r}; known: {', '.join(METHODS)}")
        unknown = sorted(set(entry.get("settings") or {}) - set(method_settings(entry["method"])))
        if unknown:
            raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)}; "
                             f"accepted: {', '.join(method_settings(entry['method']))}")
        for group in kd_teacher_groups(cfg, name):
            model = group.removesuffix("-n2v")
            if group != KD_CONTROL and model not in cfg["models"]:
                raise ValueError(f"{where}: teacher {group!r} is no model of this profile "
                                 f"(models: {', '.join(cfg['models'])}; or {KD_CONTROL!r})")
    budget = student_train(cfg).get("max_windows")
    if cfg["distill"]["top_k"] is not None and budget is not None and kd_train(cfg).get("max_windows") != budget:
        raise ValueError("kd.train.max_windows differs from the distilled students' train.max_windows: the teacher's "
                         "top-K cache holds only the students' sample of training windows")


def kd_online(cfg: Mapping[str, Any], method: str) -> bool:
    """Whether ``method`` trains its teacher alongside the student (``mutual``): no checkpoint read."""
    return method != KD_CONTROL and cfg["kd"]["methods"][method]["method"] == "mutual"


def kd_student(cfg: Mapping[str, Any], size: str) -> dict[str, Any]:
    """The student's settings at ``size``: ``models.student.settings`` with ``kd.sizes[size]`` over them."""
    if size not in cfg["kd"]["sizes"]:
        raise ValueError(f"unknown student size {size!r}; kd.sizes has {', '.join(cfg['kd']['sizes'])}")
    return {**model_spec(cfg, "student").settings, **(cfg["kd"]["sizes"][size] or {})}


def kd_teacher_groups(cfg: Mapping[str, Any], method: str) -> list[str]:
    """The run groups (``mixed_attention-n2v``, ``sasrec``, or ``control``: the same-size no-KD
    student) that teach ``method``; for ``mutual`` the peer's architecture. None for the control."""
    if method == KD_CONTROL:
        return []
    entry = cfg["kd"]["methods"][method]
    teachers = entry.get("teacher", cfg["distill"]["teacher"])
    return [teachers] if isinstance(teachers, str) else list(teachers)


def teacher_record(cfg: Mapping[str, Any], group: str, seed: int) -> dict[str, Any]:
    """What a job needs to load the trained teacher of run group ``group`` (``mixed_attention-n2v``,
    ``sasrec``) at ``seed``: architecture, settings, checkpoint and KG tables ("" when it reads none).
    The one description of a teacher that the teacher-cache rule and the toolkit's jobs share."""
    from recpress_utils.models import uses_kg

    out, spec = results_folder(cfg), model_spec(cfg, group.removesuffix("-n2v"))
    return {"model": spec.architecture, "model_kwargs": spec.settings,
            "checkpoint": f"{out}/runs/{group}_s{seed}/model.pt",
            "neighbors_path": f"{out}/kg/neighbors.pt" if uses_kg(spec.architecture) else ""}


def kd_teachers(cfg: Mapping[str, Any], method: str, size: str, seed: int) -> list[dict[str, Any]]:
    """What the run needs of each teacher: its :func:`teacher_record` (of the same seed, or of
    ``kd.teacher_seed`` when set) and its own loss (a peer trained online uses it); the no-KD control
    of the same size and seed stands in for a same-size teacher."""
    teacher_seed = seed if cfg["kd"].get("teacher_seed") is None else cfg["kd"]["teacher_seed"]
    teachers = []
    for group in kd_teacher_groups(cfg, method):
        if group == KD_CONTROL:
            student = model_spec(cfg, "student")
            teachers.append({"model": "student", "model_kwargs": kd_student(cfg, size), "neighbors_path": "",
                             "checkpoint": f"{results_folder(cfg)}/kd/{size}/{KD_CONTROL}_s{seed}/model.pt",
                             "loss": student.loss, "loss_settings": student.loss_settings})
            continue
        spec = model_spec(cfg, group.removesuffix("-n2v"))
        teachers.append({**teacher_record(cfg, group, teacher_seed),
                         "loss": spec.loss, "loss_settings": spec.loss_settings})
    return teachers


def teacher_cache_file(cfg: Mapping[str, Any], checkpoint: str, method: str | None = None) -> str:
    """The file holding the top-K cache of the teacher whose checkpoint is ``checkpoint``
    (``<out>/teacher_cache/<run>.pt``, built once by the teacher_cache rule), or "" when the run
    builds none: no ``distill.top_k``, a teacher that is no trained run of ``runs/`` (a same-size
    student, a peer trained alongside), or a toolkit ``method`` that does not read the cache."""
    from recpress_utils.distill import uses_teacher_cache

    path = Path(checkpoint)
    if cfg["distill"]["top_k"] is None or path.parent.parent.as_posix() != f"{results_folder(cfg)}/runs":
        return ""
    if method is not None and (method == KD_CONTROL or kd_online(cfg, method)
                               or not uses_teacher_cache(cfg["kd"]["methods"][method]["method"])):
        return ""
    return f"{results_folder(cfg)}/teacher_cache/{path.parent.name}.pt"


def kd_teacher_caches(cfg: Mapping[str, Any], method: str, teachers: list[Mapping[str, Any]]) -> list[str]:
    """The cache file of each of a toolkit run's ``teachers`` (:func:`kd_teachers`), "" where the
    run reads none: the first teacher's for a method that reads the top-K (soft labels, RD, RRD),
    every teacher's for multi-teacher soft labels (:func:`recpress_utils.distill.caches_every_teacher`)."""
    from recpress_utils.distill import caches_every_teacher

    every = method != KD_CONTROL and caches_every_teacher(cfg["kd"]["methods"][method]["method"])
    return [teacher_cache_file(cfg, teacher["checkpoint"], method) if i == 0 or every else ""
            for i, teacher in enumerate(teachers)]


def cache_temperatures(cfg: Mapping[str, Any]) -> list[float]:
    """Every temperature a student of this profile distils at from a cached teacher: the paper's
    ``distill.temperatures`` and each toolkit method's ``temperature`` (1 when unset, as
    :func:`recpress_utils.runs.kd_fit` reads it). One teacher pass caches them all."""
    temperatures = {float(t) for t in cfg["distill"]["temperatures"]}
    for entry in cfg["kd"]["methods"].values():
        temperatures.add(float((entry.get("settings") or {}).get("temperature", 1.0)))
    return sorted(temperatures)


def raw_events(cfg: Mapping[str, Any]) -> list[str]:
    """The raw file(s) the prepare stage reads (common.smk ``raw_events``): REES46 CSVs, the two
    files of an SR-GNN folder, or the events CSV a rule writes."""
    from recpress_utils.data.presplit import SRGNN_DATASETS

    if cfg["dataset"] in SRGNN_DATASETS:
        return srgnn_files(cfg["data_path"])
    if cfg["dataset"] == "rees46":
        files = sorted(glob.glob(cfg["data_path"], root_dir=REPO_ROOT))  # Snakemake runs in the repo
        if not files:
            raise ValueError(f"data_path={cfg['data_path']!r} matches no file")
        return files
    if cfg["dataset"] == "synthetic" and cfg["synthetic"].get("monthly"):
        from recpress_utils.data import synthetic

        months = synthetic.month_files(synthetic.SyntheticConfig.from_dict(cfg["synthetic"]))
        return [f"{results_folder(cfg)}/raw/{name}" for name in months]
    return [f"{results_folder(cfg)}/raw/events.csv"]


def srgnn_files(folder: str) -> list[str]:
    """``all_train_seq.txt[.gz]`` and ``test.txt[.gz]`` of an SR-GNN folder (repository-relative
    or absolute), each named in the error when missing."""
    from recpress_utils.data.srgnn import SrgnnDataError, locate_file

    root = repo_path(folder)
    if not root.is_dir():
        raise ValueError(f"data_path={folder!r}: no such folder (it must hold SR-GNN's "
                         "all_train_seq.txt[.gz] and test.txt[.gz])")
    try:
        return [str(locate_file(root, name)) for name in ("all_train_seq.txt", "test.txt")]
    except (FileNotFoundError, SrgnnDataError) as err:
        raise ValueError(f"data_path={folder!r}: {err}") from err


def ensure_raw_events(cfg: Mapping[str, Any], data_seed: int) -> None:
    """Write the raw events of a synthetic or MovieLens dataset if missing, as the rules
    ``synthetic_events`` (config ``synthetic`` knobs, seed ``data_seed``) and
    ``movielens_events`` do. For notebooks run stand-alone; REES46 files are never written."""
    if cfg["dataset"] == "rees46" or all(repo_path(p).exists() for p in raw_events(cfg)):
        return
    path = repo_path(f"{results_folder(cfg)}/raw/events.csv")
    if cfg["dataset"] == "synthetic":
        from recpress_utils.data import synthetic

        knobs = synthetic.SyntheticConfig.from_dict({**cfg["synthetic"], "seed": data_seed})
        if knobs.monthly:
            synthetic.write_monthly_csvs(knobs, path.parent)
        else:
            synthetic.write_events_csv(knobs, path)
    else:
        from recpress_utils.data import movielens

        source = movielens.SOURCES[cfg["dataset"]]
        raw = movielens.fetch_movielens(source, repo_path(f"resources/{source.name}"))
        movielens.write_events_csv(raw, path, source)


# --- the notebooks' parameters ------------------------------------------------------------------
# One function per notebook: fill the parameters left at None (p) from the config (cfg), exactly
# as the rule that runs the notebook computes them. Identity parameters (dataset, model, seed,
# temperature) are filled first, so paths follow a value given by hand (seed=43 -> ..._s43).

def _prepare_data(cfg: dict, p: dict) -> None:  # rule prepare_data (data.smk)
    _fill(p, "dataset", lambda: cfg["dataset"])
    cfg = {**cfg, "dataset": p["dataset"]}
    _fill(p, "data_seed", lambda: cfg["data_seed"])
    if p["raw_paths"] is None:
        ensure_raw_events(cfg, p["data_seed"])
        p["raw_paths"] = raw_events(cfg)
    _fill(p, "out_dir", lambda: f"{results_folder(cfg)}/prepared")
    _fill(p, "prepare", lambda: cfg["prepare"])
    _fill(p, "memory_mb", lambda: cfg["resources"]["data"]["mem_mb"])


def _build_kg(cfg: dict, p: dict) -> None:  # rule build_kg (kg.smk)
    out = results_folder(cfg)
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    _fill(p, "kg_dir", lambda: f"{out}/kg")
    _fill(p, "kg", lambda: cfg["kg"])
    _fill(p, "data_seed", lambda: cfg["data_seed"])


def _node2vec(cfg: dict, p: dict) -> None:  # rule node2vec (kg.smk), for the first seed
    out = results_folder(cfg)
    _fill(p, "seed", lambda: paper_seeds(cfg)[0])
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    _fill(p, "kg_dir", lambda: f"{out}/kg")
    _fill(p, "emb_dir", lambda: f"{out}/embeddings/s{p['seed']}")
    _fill(p, "node2vec", lambda: {k: v for k, v in cfg["node2vec"].items() if k != "walk_threads"})
    _fill(p, "threads", lambda: cfg["node2vec"]["walk_threads"])  # part of the draw, not of the job


def _train_model(cfg: dict, p: dict) -> None:  # rule train_model (train.smk), train_inputs (common.smk)
    from recpress_utils.models import uses_kg
    from recpress_utils.runs import ModelSpec

    out = results_folder(cfg)
    teacher, teacher_model, _ = teacher_run(cfg)
    if p["model"] is None:  # the distillation teacher's run, the paper's best model
        p["model"] = teacher_model
    _fill(p, "node2vec", lambda: p["model"] == teacher_model and teacher.endswith("-n2v"))
    _fill(p, "seed", lambda: cfg["seeds"][0])
    _fill(p, "spec", lambda: cfg["models"].get(p["model"], {}))
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    architecture = ModelSpec.from_config(p["model"], p["spec"]).architecture
    _fill(p, "neighbors_path", lambda: f"{out}/kg/neighbors.pt" if uses_kg(architecture) else "")
    _fill(p, "node2vec_path", lambda: f"{out}/embeddings/s{p['seed']}/node2vec.pt" if p["node2vec"] else "")
    _fill(p, "run_dir", lambda: f"{out}/runs/{p['model']}{'-n2v' if p['node2vec'] else ''}_s{p['seed']}")
    _fill(p, "train", lambda: cfg["train"])


def _distill(cfg: dict, p: dict) -> None:  # rule distill (distill.smk), distill_inputs (common.smk)
    from recpress_utils.models import uses_kg

    out = results_folder(cfg)
    teacher, teacher_model, _ = teacher_run(cfg)
    spec = model_spec(cfg, teacher_model)
    # the student the latency benchmark times; the pipeline runs every distill.temperatures
    _fill(p, "temperature", lambda: float(cfg["benchmark"]["student_temperature"]))
    _fill(p, "seed", lambda: paper_seeds(cfg)[0])
    _fill(p, "hard_weight", lambda: cfg["distill"]["hard_weight"])
    _fill(p, "top_k", lambda: cfg["distill"]["top_k"])
    _fill(p, "negatives", lambda: cfg["distill"]["negatives"])
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    _fill(p, "teacher_model", lambda: spec.architecture)
    _fill(p, "teacher_kwargs", lambda: spec.settings)
    _fill(p, "teacher_checkpoint", lambda: f"{out}/runs/{teacher}_s{p['seed']}/model.pt")
    _fill(p, "neighbors_path", lambda: f"{out}/kg/neighbors.pt" if uses_kg(teacher_model) else "")
    _fill(p, "teacher_cache", lambda: teacher_cache_file(cfg, p["teacher_checkpoint"]) if p["top_k"] is not None else "")
    _fill(p, "run_dir", lambda: f"{out}/runs/student-T{p['temperature']:g}_s{p['seed']}")
    _fill(p, "student_kwargs", lambda: model_spec(cfg, "student").settings)
    _fill(p, "train", lambda: student_train(cfg))


def _kd(cfg: dict, p: dict) -> None:  # rule kd (kd.smk), kd_inputs (common.smk)
    out = results_folder(cfg)
    student = model_spec(cfg, "student")
    _fill(p, "size", lambda: next(iter(cfg["kd"]["sizes"])))
    _fill(p, "method", lambda: KD_CONTROL)
    _fill(p, "seed", lambda: kd_seeds(cfg)[0])
    _fill(p, "method_spec", lambda: ({} if p["method"] == KD_CONTROL else
                                     {k: v for k, v in cfg["kd"]["methods"][p["method"]].items() if k != "teacher"}))
    _fill(p, "teachers", lambda: kd_teachers(cfg, p["method"], p["size"], p["seed"]))
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    _fill(p, "run_dir", lambda: f"{out}/kd/{p['size']}/{p['method']}_s{p['seed']}")
    _fill(p, "student_kwargs", lambda: kd_student(cfg, p["size"]))
    _fill(p, "student_loss", lambda: {"loss": student.loss, "loss_settings": student.loss_settings})
    _fill(p, "top_k", lambda: cfg["distill"]["top_k"])
    _fill(p, "negatives", lambda: cfg["distill"]["negatives"])
    _fill(p, "teacher_caches", lambda: kd_teacher_caches(cfg, p["method"], p["teachers"]))
    _fill(p, "train", lambda: kd_train(cfg))


def kd_train(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The toolkit's training settings: the distilled students' (:func:`student_train`) with
    ``kd.train`` over them, e.g. a stated budget for every method and the control alike."""
    return {**student_train(cfg), **(cfg["kd"].get("train") or {})}


def _benchmark(cfg: dict, p: dict) -> None:  # rule latency (benchmark.smk), benchmark_inputs (common.smk)
    out, bench = results_folder(cfg), cfg["benchmark"]
    names, runs = benchmark_runs(cfg)
    _fill(p, "prepared_dir", lambda: f"{out}/prepared")
    _fill(p, "runs", lambda: runs)
    for role in ("teacher", "baseline", "student"):
        _fill(p, role, lambda: names[role])
    _fill(p, "neighbors_path", lambda: f"{out}/kg/neighbors.pt")
    _fill(p, "graph_path", lambda: f"{out}/kg/graph.parquet")
    _fill(p, "out_path", lambda: f"{out}/benchmark/latency.json")
    _fill(p, "threads", lambda: bench["threads"])  # the benchmark's own thread count
    for key in ("repeats", "n_single", "catalogue_sizes"):
        _fill(p, key, lambda: bench[key])
    _fill(p, "data_seed", lambda: cfg["data_seed"])


#: Notebook (file stem) -> the parameters its rule passes (besides ``profile``), and the
#: function filling them from the config. ``threads`` defaults to the config's ``threads``.
STAGES: dict[str, tuple[tuple[str, ...], Callable[[dict, dict], None]]] = {
    "01_prepare_data": (("dataset", "raw_paths", "out_dir", "prepare", "data_seed", "threads", "memory_mb"),
                        _prepare_data),
    "02_build_kg": (("prepared_dir", "kg_dir", "kg", "data_seed", "threads"), _build_kg),
    "03_node2vec": (("prepared_dir", "kg_dir", "emb_dir", "node2vec", "seed", "threads"), _node2vec),
    "04_train_model": (("model", "spec", "node2vec", "seed", "prepared_dir", "neighbors_path",
                        "node2vec_path", "run_dir", "train", "threads"), _train_model),
    "05_distill": (("temperature", "hard_weight", "top_k", "negatives", "seed", "prepared_dir", "teacher_model",
                    "teacher_kwargs", "teacher_checkpoint", "neighbors_path", "teacher_cache", "run_dir",
                    "student_kwargs", "train", "threads"), _distill),
    "09_kd": (("size", "method", "seed", "method_spec", "teachers", "prepared_dir", "run_dir", "student_kwargs",
               "student_loss", "top_k", "negatives", "teacher_caches", "train", "threads"), _kd),
    "06_benchmark": (("prepared_dir", "runs", "teacher", "baseline", "student", "neighbors_path",
                      "graph_path", "out_path", "repeats", "n_single", "data_seed",
                      "catalogue_sizes", "threads"), _benchmark),
}


def stage_params(cfg: Mapping[str, Any], stage: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter of notebook ``stage`` from ``given`` and the loaded config ``cfg``: what a
    rule passes (kd.smk) and what :func:`resolve` gives a notebook run by hand."""
    names, fill = STAGES[stage]
    params = {name: given.get(name) for name in names}
    fill(dict(cfg), params)
    if params["threads"] is None:
        params["threads"] = cfg["threads"]
    return params


def resolve(stage: str, given: Mapping[str, Any], profile: str | Path | None = None,
            verbose: bool = True) -> dict[str, Any]:
    """The parameters of notebook ``stage`` (e.g. ``"04_train_model"``): those in ``given``
    (a notebook passes ``globals()``) that are not None, the rest from
    ``load_config(profile)`` as the stage's rule computes them.

    Keys of ``given`` that are not the stage's parameters are ignored. When nothing is None (a
    pipeline run) the config is not read and ``given`` comes back unchanged. ``verbose`` prints
    which parameters came from the config.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    names, _ = STAGES[stage]
    params = {name: given.get(name) for name in names}
    missing = [name for name, value in params.items() if value is None]
    if missing:
        cfg = load_config(profile or None)
        params = stage_params(cfg, stage, params)
        if verbose:
            print(f"from the config ({' + '.join([CONFIG_FILE] + ([str(profile)] if profile else []))}): "
                  + ", ".join(missing))
    return params


def _fill(params: dict, name: str, value: Callable[[], Any]) -> None:
    if params[name] is None:
        params[name] = value()
