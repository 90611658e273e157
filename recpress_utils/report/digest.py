"""A dataset's results in a small, committed form: what every report page is rendered from.

The pipeline writes hundreds of files under ``results/<dataset>/`` (checkpoints, per-run JSON,
notebooks). The report needs a few kilobytes of them, and a reviewer wants to diff exactly those:

* ``digest.csv``: one row per run: ``model`` (the run group: the config name plus ``-n2v``, or
  ``student-T<T>``), ``architecture``, ``seed``, every test metric as a fraction under its usual
  name (``NDCG@10``; ``rest:NDCG@10`` for target mode ``rest``), ``best_epoch``, ``last_epoch``,
  ``seconds_per_epoch`` and a few more columns;
* ``curves.csv``: validation metrics per run and epoch (the paper's Figures 4-7);
* ``latency.json`` and ``relatedness.json``: the benchmark and the C6 check, as written;
* ``kd.csv`` and ``kd_latency.json`` (profiles with ``kd.methods``): one row per distillation-toolkit
  run, and the latency of one student per size;
* ``teacher_cache.csv`` (optional, made by hand): distilling from the teacher's cached top-K
  against its full distribution (:mod:`recpress_utils.distill.cache_bench`), one row per way;
* ``kd_cost.csv`` (optional, made by hand): seconds per training step of each toolkit method
  against the control, timed in one process (:mod:`recpress_utils.distill.cost_bench`);
* ``kd_longer.csv`` (optional, made by hand): some toolkit runs trained again under a longer,
  early-stopped budget (``kd.train.epochs`` raised, in a results folder of its own: ``--kd-longer``,
  with ``--update <size/method>`` for one method trained again), to check that a verdict at the
  toolkit's budget is not only speed of learning;
* ``data.json``: the prepared data's and the knowledge graph's statistics (cold targets included);
* ``stages.csv``: wall time and peak memory of every Snakemake job (its ``benchmark:`` file; a
  job resumed after a kill counts the training seconds of all its attempts);
* ``provenance.json``: software, machine, commit and the effective config.

Because the report reads only these files, re-executing it (nbval) reproduces every printed
character. Whether a fresh run *regenerates* the committed numbers is a separate, tolerant check
(:func:`compare_digests`): training on another CPU, BLAS or thread count changes the last bits
of a reduction, and over epochs the last printed digit, so each model's metrics, averaged over
its seeds as the report prints them, are compared within a stated absolute tolerance, never
exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from recpress_utils.io import atomic_path, read_json, write_json
from recpress_utils.names import is_paper_group
from recpress_utils.paths import repo_path
from recpress_utils.report.provenance import provenance
from recpress_utils.report.results import METRICS, load_runs

#: Absolute tolerance of a regenerated metric against the committed digest (fractions, so
#: 0.015 = 1.5 points of HR@20), on a model's mean over seeds: above the noise of another CPU
#: (an AMD EPYC regenerating a digest committed from another machine differed by up to 0.0124,
#: BERT4Rec's HR@20; thread counts alone stay under 0.005), below the differences the claims
#: are about.
TOLERANCE = 0.015
#: Metrics are stored at this many decimals: more than the report prints, and still stable text.
DECIMALS = 6
#: The training loop's line when it resumes from a checkpoint (:func:`recpress_utils.train.fit`).
RESUMED = re.compile(r"^resumed from .* after epoch (\d+)$", re.MULTILINE)
#: Files of every digest; the paper's stages add the latency run and the relatedness check.
FILES: tuple[str, ...] = ("digest.csv", "curves.csv", "stages.csv", "data.json", "provenance.json")
PAPER_FILES: tuple[str, ...] = ("latency.json", "relatedness.json")
#: The distillation toolkit's runs (``kd/``) and the latency of one student per size, when the
#: profile configures methods.
KD_FILE, KD_LATENCY = "kd.csv", "kd_latency.json"
#: ``kd.csv`` columns of the teacher's own test metrics (``teacher:MRR@20``), as the run recorded them.
TEACHER_PREFIX = "teacher:"
#: The cache comparison's table (:mod:`recpress_utils.distill.cache_bench`): not a pipeline
#: output (it trains the student twice more), so a digest has it only where it was run.
TEACHER_CACHE_FILE = "teacher_cache.csv"
#: The toolkit methods' step cost against the control (:mod:`recpress_utils.distill.cost_bench`):
#: timed by hand on a machine left alone, so a digest has it only where it was run.
KD_COST_FILE = "kd_cost.csv"
#: The toolkit's runs of a few methods under a longer budget than ``kd.train``'s (:func:`kd_longer_table`):
#: hours of training beyond the pipeline's, so a digest has it only where it was run.
KD_LONGER_FILE = "kd_longer.csv"


def digest_files(paper: bool, kd: bool = False) -> list[str]:
    """The files a dataset's digest holds (the Snakefile's outputs and what reports/ commits)."""
    return [*FILES, *(PAPER_FILES if paper else ()), *((KD_FILE, KD_LATENCY) if kd else ())]


@dataclasses.dataclass
class Digest:
    """One dataset's digest, loaded. ``runs`` has the columns :func:`recpress_utils.report.results.load_runs`
    expects (``group`` = the run group, ``model`` = the architecture)."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    latency: dict[str, Any] | None
    relatedness: dict[str, Any] | None
    data: dict[str, Any]
    stages: pd.DataFrame
    provenance: dict[str, Any]
    kd: pd.DataFrame | None = None  # the distillation toolkit's runs (kd.csv), when configured
    kd_latency: dict[str, Any] | None = None  # one student per size timed (kd_latency.json)
    teacher_cache: pd.DataFrame | None = None  # cached top-K vs full-vocabulary KD (teacher_cache.csv)
    kd_cost: pd.DataFrame | None = None  # each toolkit method's step cost against the control (kd_cost.csv)
    kd_longer: pd.DataFrame | None = None  # some toolkit runs again under a longer budget (kd_longer.csv)

    @property
    def config(self) -> dict[str, Any]:
        """The effective config of the run the digest was made from."""
        return self.provenance.get("config", {})


def _runs_table(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``digest.csv`` rows and ``curves.csv`` rows from every ``runs/<run>/metrics.json``."""

    runs = load_runs(results)
    rows, points = [], []
    for record, path in zip(runs.to_dict("records"), runs["path"]):
        record = {"model": record.pop("group"), "architecture": record.pop("model"), **record}
        record.pop("path")
        record["last_epoch"] = record.pop("epochs_run")
        metrics = read_json(Path(path) / "metrics.json")
        record["test_sessions"] = metrics.get("test_sessions", np.nan)
        record["test_cold_targets"] = metrics.get("test_cold_targets", np.nan)
        rows.append(record)
        for h in metrics["history"]:
            points.append({"model": record["model"], "seed": record["seed"], **h})
    table = pd.DataFrame(rows).sort_values(["model", "seed"], kind="stable")
    curves = pd.DataFrame(points)
    if len(curves):
        curves = curves.sort_values(["model", "seed", "epoch"], kind="stable")
    return table.round(DECIMALS), curves.round(DECIMALS)


def _kd_table(results: Path) -> pd.DataFrame:
    """``kd.csv``: one row per distillation-toolkit run (``kd/<size>/<method>_s<seed>``): size,
    method (the config's name; ``control`` = no KD), the method it runs, its teachers' run groups,
    seed, every test metric, epochs, seconds and parameters (the student's, and the method's own
    trained alongside), ``settings`` (the method's settings from the config, as JSON; ``{}``: its
    defaults), and ``teacher:<metric>``, the first frozen teacher's own test metrics as its run
    recorded them when the student learnt from it (empty when not recorded)."""
    rows = []
    for path in sorted((results / "kd").glob("*/*/metrics.json")):
        m = read_json(path)
        kd = m["kd"]
        teachers = [Path(t["checkpoint"]).parent.name.rsplit("_s", 1)[0] if "/runs/" in t["checkpoint"]
                    else "control" for t in kd["teachers"]]
        rows.append({"size": path.parent.parent.name, "method": path.parent.name.rsplit("_s", 1)[0],
                     "kind": kd["method"] or "none", "teachers": "+".join(teachers), "seed": int(m["seed"]),
                     **{k: m["test"].get(k, np.nan) for k in METRICS},
                     **{f"{TEACHER_PREFIX}{k}": kd["teachers"][0].get("test", {}).get(k, np.nan) if kd["teachers"]
                        else np.nan for k in METRICS},
                     "best_epoch": m["best_epoch"], "last_epoch": m["epochs_run"], "train_seconds": m["train_seconds"],
                     "seconds_per_epoch": m["seconds_per_epoch"], "n_parameters": m["n_parameters"],
                     "method_parameters": kd["method_parameters"],
                     "settings": json.dumps(kd["spec"].get("settings", {}), sort_keys=True)})
    columns = ["size", "method", "kind", "teachers", "seed", *METRICS, *(TEACHER_PREFIX + k for k in METRICS)]
    table = pd.DataFrame(rows, columns=columns + ["best_epoch", "last_epoch", "train_seconds", "seconds_per_epoch",
                                                  "n_parameters", "method_parameters", "settings"])
    return table.sort_values(["size", "method", "seed"], kind="stable").round(DECIMALS)


def kd_longer_table(results: str | Path) -> pd.DataFrame:
    """``kd_longer.csv``: :func:`_kd_table` of a results folder whose profile raised ``kd.train.epochs``
    (the toolkit's runs of some methods trained again, early-stopped on validation as every run is),
    with each run's ``epochs_cap`` and ``patience`` as it recorded them, so the page can say what the
    longer budget was without trusting a config."""
    results = repo_path(results)
    table = _kd_table(results)
    if table.empty:
        raise FileNotFoundError(f"no toolkit runs (kd/<size>/<method>_s<seed>/metrics.json) under {results}")
    recorded = [read_json(results / "kd" / size / f"{method}_s{seed}" / "metrics.json")["train_config"]
                for size, method, seed in table[["size", "method", "seed"]].itertuples(index=False)]
    return table.assign(epochs_cap=[r["epochs"] for r in recorded], patience=[r["patience"] for r in recorded])


def updated_kd_longer(results: str | Path, committed: pd.DataFrame, toolkit: list[str]) -> pd.DataFrame:
    """``kd_longer.csv`` with the rows of the toolkit groups ``toolkit`` (``size/method``) made again
    from ``results`` (:func:`kd_longer_table`), every other row as committed: for a method swept
    again after its longer-budget runs, trained again at its new settings in a results folder that
    need not hold the other methods' runs.

    Each group's gain under the longer budget is paired with the committed control of its size,
    so a fresh run must have recorded the control's cap and patience: a group trained under
    another budget is refused, never paired with a control that had a different one."""
    fresh = _groups_runs(kd_longer_table(results), toolkit, repo_path(results))
    kept = committed[~_in_groups(committed, toolkit)]
    budget = ["epochs_cap", "patience"]
    controls = kept[kept["kind"] == "none"].groupby("size")[budget].agg(set)
    for (size, method), runs in fresh.groupby(["size", "method"]):
        ran = {column: set(runs[column]) for column in budget}
        if size in controls.index and any(ran[c] != controls.loc[size, c] for c in budget):
            raise ValueError(f"{size}/{method} ran under {ran}, its committed control under "
                             f"{controls.loc[size].to_dict()}: train it under the control's budget")
    return pd.concat([kept, fresh[committed.columns]]).sort_values(["size", "method", "seed"], kind="stable")


def stages(results: Path) -> pd.DataFrame:
    """Wall seconds and peak memory (MB) per Snakemake job, from its ``benchmark:`` file.

    A training job killed and resumed from its epoch checkpoint (a session ended) is benchmarked
    for its last attempt only. Its log says so (``resumed from ... after epoch N``, printed by the
    training loop), and its run recorded its training seconds and every epoch's, so such a job's
    seconds are the last attempt's plus those of the N epochs it did not train again
    (:func:`_seconds_until`; ``resumed`` True): never the last attempt's few minutes alone. Peak
    memory stays the last attempt's (each attempt loads the same data and model)."""
    rows = []
    for tsv in sorted((results / "benchmarks").glob("*.tsv")):
        bench = pd.read_csv(tsv, sep="\t")
        stage = tsv.stem.split("_")[0] if tsv.stem[:2].isdigit() else tsv.stem
        seconds = float(bench["s"].iloc[0])
        after = _resumed_after(results / "logs" / f"{tsv.stem}.log")
        metrics = results / _run_of_job(tsv.stem) / "metrics.json"
        if after and metrics.exists():
            seconds += _seconds_until(read_json(metrics), after)
        rows.append({"job": tsv.stem, "stage": stage, "seconds": round(seconds, 2),
                     "max_rss_mb": round(float(bench["max_rss"].iloc[0]), 1), "resumed": after is not None})
    return pd.DataFrame(rows, columns=["job", "stage", "seconds", "max_rss_mb", "resumed"])


def _seconds_until(run: Mapping[str, Any], epoch: int) -> float:
    """The seconds a run spent on its first ``epoch`` epochs, validation included: its training
    seconds (every attempt's, validation included) shared out in proportion to the epochs' own
    recorded seconds (which leave validation out)."""
    history = run.get("history", [])
    total = sum(e["epoch_seconds"] for e in history)
    before = sum(e["epoch_seconds"] for e in history if e["epoch"] <= epoch)
    return float(run.get("train_seconds", 0.0)) * before / total if total else 0.0


def _resumed_after(log: Path) -> int | None:
    """The epoch a job's last attempt resumed after (its log's last ``resumed from ... after epoch
    N`` line: :func:`recpress_utils.train.fit` prints it), None when it started afresh or left no log."""
    if not log.exists():
        return None
    epochs = RESUMED.findall(log.read_text(errors="replace"))
    return int(epochs[-1]) if epochs else None


def _run_of_job(job: str) -> str:
    """The run folder a training job writes, under the results folder: ``04_train_model_sasrec_s42``
    -> ``runs/sasrec_s42``, ``05_distill_T1_s42`` -> ``runs/student-T1_s42``, ``09_kd_e32_rd_s42``
    -> ``kd/e32/rd_s42`` (size names have no "_"); "" for other jobs."""
    if job.startswith("04_train_model_"):
        return "runs/" + job.removeprefix("04_train_model_")
    if job.startswith("05_distill_"):
        return "runs/student-" + job.removeprefix("05_distill_")
    if job.startswith("09_kd_"):
        size, run = job.removeprefix("09_kd_").split("_", 1)
        return f"kd/{size}/{run}"
    return ""


#: Config sections every run of a dataset depends on; the paper's stages add the knowledge graph,
#: Node2Vec and distillation.
RUN_SECTIONS = ("dataset", "prepare", "seeds", "data_seed")
PAPER_SECTIONS = ("kg", "node2vec", "distill")


def _shared_differences(old: Any, new: Any, path: str) -> list[str]:
    """Settings both configs name and set differently (a key one of them lacks is a schema
    addition with its default, not a change)."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        return [d for k in sorted(set(old) & set(new)) for d in _shared_differences(old[k], new[k], f"{path}.{k}")]
    return [] if old == new else [path.lstrip(".")]


def _config_conflicts(old: Mapping[str, Any], new: Mapping[str, Any], kept: list[str]) -> list[str]:
    """Why runs of ``kept`` (run groups) made under config ``old`` would not be made under ``new``:
    a differing data section (the paper's stages' sections only when a paper model is kept: a peer
    never reads them), or a kept model's resolved spec or training settings."""
    from recpress_utils.config import model_spec, train_settings

    sections = RUN_SECTIONS + (PAPER_SECTIONS if new.get("paper") and any(map(is_paper_group, kept)) else ())
    conflicts = [d for key in sections for d in _shared_differences(old.get(key), new.get(key), key)]
    for name in sorted({g.split("-")[0] for g in kept}):
        if name in new.get("models", {}) and (model_spec(old, name) != model_spec(new, name)
                                               or train_settings(old, name) != train_settings(new, name)):
            conflicts.append(f"models.{name}")
    return conflicts


def _job_group(job: str) -> str:
    """The group a training job trains: a run group (``04_train_model_sasrec_s42`` -> ``sasrec``) or
    a toolkit group (``09_kd_e16_multi_s42`` -> ``e16/multi``); "" for other jobs."""
    run = _run_of_job(job)
    return run.split("/", 1)[1].rsplit("_s", 1)[0] if run else ""


def _data_stats(results: Path) -> dict[str, Any]:
    """The prepared data's statistics and the KG's, minus timings (they vary run to run)."""
    prepared = read_json(results / "prepared" / "stats.json")
    out: dict[str, Any] = {"prepared": prepared}
    kg = results / "kg" / "kg_stats.json"
    if kg.exists():
        out["kg"] = {k: v for k, v in read_json(kg).items() if k != "timing"}
    return out


def _write_tables(out: Path, frames: Mapping[str, pd.DataFrame], decimals: int | None = None) -> None:
    """Write each table of ``frames`` to ``out/<name>`` atomically, rounded to ``decimals`` when
    merged from a committed digest (so kept rows print as committed)."""
    for name, frame in frames.items():
        with atomic_path(out / name) as tmp:
            (frame if decimals is None else frame.round(decimals)).to_csv(tmp, index=False)


def build_digest(results_dir: str | Path, out_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Write every digest file of one dataset's results folder to ``out_dir`` (atomically each)."""
    results, out = repo_path(results_dir), repo_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs, curves = _runs_table(results)
    _write_tables(out, {"digest.csv": runs, "curves.csv": curves, "stages.csv": stages(results)})
    if (results / "kd").is_dir():
        _write_tables(out, {KD_FILE: _kd_table(results)})
    elif (out / KD_FILE).exists():
        (out / KD_FILE).unlink()
    for name, source in (("latency.json", results / "benchmark" / "latency.json"),
                         ("relatedness.json", results / "claims" / "relatedness.json"),
                         (KD_LATENCY, results / "kd" / "latency.json")):
        if source.exists():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(source, tmp)
        elif (out / name).exists():
            (out / name).unlink()
    write_json(_data_stats(results), out / "data.json")
    write_json(provenance(dict(config), results), out / "provenance.json")
    return out


def update_digest(results_dir: str | Path, digest_dir: str | Path, config: Mapping[str, Any],
                  groups: list[str]) -> Path:
    """Replace the rows of the run groups ``groups`` (``bert4rec``, ``student-T1``) and of the
    toolkit groups among them (``e16/multi``: a size and a method of ``kd.csv``) in a committed
    digest with a fresh run of them, keeping every other row as committed.

    For a profile too long to rerun whole when one model's settings change (chosen again on
    validation): the models' runs, validation curves and training jobs come from ``results_dir``,
    everything else stays, the latency benchmark too (so an update must keep the models' size:
    checked by their parameter counts). ``provenance.json`` keeps the committed run's machine and commit and
    gains an ``updates`` entry (the groups, this commit, machine, packages); its ``config``
    becomes the effective config of this run (in the digest's own scope, ``paper`` or peers
    only), which must still make the kept runs: the same data sections and, for each kept model,
    the same resolved spec and training settings (:func:`_config_conflicts`), so that the page
    never prints a setting no run used.

    A relatedness entry (C6) of ``results_dir`` for a run of ``groups`` replaces the committed one.
    What the update keeps that was computed from the replaced runs' earlier weights is recorded in
    its entry (``stale``, :func:`_computed_from`); what it makes again of what an earlier update
    left so, under ``refreshed``: an update of ``sasrec e16/multi`` with the relatedness check run
    again clears what retraining SASRec left behind.
    """
    results, out = repo_path(results_dir), repo_path(digest_dir)
    committed = load_digest(out)
    toolkit = [g for g in groups if "/" in g]
    groups = [g for g in groups if "/" not in g]
    table = pd.read_csv(out / "digest.csv")
    # The digest keeps its scope (the paper's stages, or the peers only) whatever the profile says now.
    new_config = {**config, "paper": committed.config.get("paper", config.get("paper"))}
    kept = sorted(set(table["model"]) - set(groups))
    if conflicts := _config_conflicts(committed.config, new_config, kept):
        raise ValueError(f"the config differs from the committed digest's for the kept runs {kept}: "
                         f"{conflicts}; rerun the profile")
    runs, curves = _runs_table(results) if groups else (table.iloc[:0], pd.DataFrame())
    fresh_runs = runs[runs["model"].isin(groups)]
    fresh_curves = curves[curves["model"].isin(groups)] if len(curves) else curves  # kNN runs have no epochs
    if missing := sorted(set(groups) - set(fresh_runs["model"])):
        raise FileNotFoundError(f"no runs of {missing} under {results / 'runs'}")
    def sizes(frame: pd.DataFrame, group: str) -> set[float]:
        return set(frame.loc[frame["model"] == group, "n_parameters"].fillna(0))

    resized = [g for g in groups if g in set(table["model"]) and sizes(fresh_runs, g) != sizes(table, g)]
    if resized:  # the latency benchmark and relatedness check timed the committed architecture
        raise ValueError(f"{resized} changed size; latency.json would no longer describe them: rerun the profile")
    old_curves = pd.read_csv(out / "curves.csv")
    jobs = stages(results)
    fresh_jobs = jobs[jobs["job"].map(_job_group).isin(groups + toolkit)]
    old_jobs = pd.read_csv(out / "stages.csv", dtype={"stage": str})
    old_jobs = old_jobs[~old_jobs["job"].map(_job_group).isin(groups + toolkit)]
    merged = {
        "digest.csv": pd.concat([table[~table["model"].isin(groups)], fresh_runs[table.columns]])
        .sort_values(["model", "seed"], kind="stable"),
        "curves.csv": pd.concat([old_curves[~old_curves["model"].isin(groups)],
                                 *([fresh_curves[old_curves.columns]] if len(fresh_curves) else [])])
        .sort_values(["model", "seed", "epoch"], kind="stable"),
        "stages.csv": pd.concat([old_jobs, fresh_jobs]).sort_values("job", kind="stable"),
    }
    if toolkit:
        merged[KD_FILE] = _updated_kd(results, committed, new_config, toolkit)
    _write_tables(out, merged, DECIMALS)
    refreshed = {"kd": sorted(toolkit)} if toolkit else {}
    if fresh_related := _fresh_relatedness(results, committed, groups):
        write_json({**committed.relatedness, "runs": dict(sorted({**committed.relatedness["runs"],
                                                                  **fresh_related}.items()))}, out / "relatedness.json")
        refreshed["relatedness"] = sorted(fresh_related)
    now = provenance(new_config, results)
    update = {"groups": groups + toolkit, **{k: now[k] for k in ("git_commit", "cpu", "cpu_count", "packages")}}
    stale = {part: left for part, items in _computed_from(committed, groups).items()
             if (left := sorted(set(items) - set(refreshed.get(part, []))))}
    update |= {key: value for key, value in (("stale", stale), ("refreshed", refreshed)) if value}
    write_json({**committed.provenance, "config": new_config,
                "updates": [*committed.provenance.get("updates", []), update]}, out / "provenance.json")
    return out


def _in_groups(table: pd.DataFrame, toolkit: list[str]) -> pd.Series:
    """Which rows of a toolkit table (kd.csv, kd_longer.csv) belong to the groups ``toolkit`` (``size/method``)."""
    return (table["size"] + "/" + table["method"]).isin(toolkit)


def _groups_runs(fresh: pd.DataFrame, toolkit: list[str], results: Path) -> pd.DataFrame:
    """The rows of ``fresh`` (a toolkit table of ``results``) in the groups ``toolkit``; a group
    without any is named, so an update never drops a method's committed rows for nothing."""
    fresh = fresh[_in_groups(fresh, toolkit)]
    if missing := sorted(set(toolkit) - set(fresh["size"] + "/" + fresh["method"])):
        raise FileNotFoundError(f"no toolkit runs of {missing} under {results / 'kd'}")
    return fresh


def _updated_kd(results: Path, committed: Digest, config: Mapping[str, Any], toolkit: list[str]) -> pd.DataFrame:
    """``kd.csv`` with the rows of the toolkit groups ``toolkit`` (``size/method``) made again from
    ``results``, every other row as committed, which ``config`` must still make (:func:`_kd_conflicts`)."""
    if committed.kd is None:
        raise FileNotFoundError(f"the committed digest has no {KD_FILE} to update {toolkit} in")
    fresh = _kd_table(results) if (results / "kd").is_dir() else pd.DataFrame(columns=["size", "method", "seed"])
    fresh = _groups_runs(fresh, toolkit, results)
    kept = committed.kd[~_in_groups(committed.kd, toolkit)]
    if conflicts := _kd_conflicts(committed.config, config, kept):
        raise ValueError(f"the config differs from the committed digest's for the kept toolkit runs: {conflicts}")
    return pd.concat([kept, fresh[committed.kd.columns]]).sort_values(["size", "method", "seed"], kind="stable")


def _fresh_relatedness(results: Path, committed: Digest, groups: list[str]) -> dict[str, Any]:
    """The relatedness entries (C6) of ``results`` for runs of ``groups``, to replace the committed
    ones; none without a committed check. The fresh check must have scored the committed check's
    seed items (the same count and cut-off, and the same scores for the popularity and random
    references, which another sample of seed items, e.g. another ``--seed``, changes), so that the
    entries stay comparable."""
    source = results / "claims" / "relatedness.json"
    if committed.relatedness is None or not source.exists():
        return {}
    fresh = read_json(source)
    if differ := [k for k in ("k", "n_seed_items", "popularity", "random") if fresh.get(k) != committed.relatedness.get(k)]:
        raise ValueError(f"{source} checked other seed items than the committed check ({differ} differ)")
    return {run: entry for run, entry in fresh["runs"].items() if run.rsplit("_s", 1)[0] in groups}


def _computed_from(committed: Digest, groups: list[str]) -> dict[str, list[str]]:
    """What an update keeps that was computed from the earlier weights of the runs it replaces:
    the relatedness check's runs of ``groups`` and the toolkit runs (``size/method``) that learnt
    from them. The page says so beside those numbers (:func:`recpress_utils.report.provenance.stale_note`).
    Latency is not listed: it times the architecture, which the update keeps (checked by size)."""
    stale: dict[str, list[str]] = {}
    if related := sorted(run for run in (committed.relatedness or {}).get("runs", {})
                         if run.rsplit("_s", 1)[0] in groups):
        stale["relatedness"] = related
    if committed.kd is not None:
        taught = committed.kd[[bool(set(str(t).split("+")) & set(groups)) for t in committed.kd["teachers"].fillna("")]]
        if len(taught):
            stale["kd"] = sorted({f"{size}/{method}" for size, method in zip(taught["size"], taught["method"])})
    return stale


def extend_digest(results_dir: str | Path, digest_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Add the runs of ``results_dir`` to a committed digest, keeping the committed runs it lacks.

    For a profile whose runs are made over several sittings (the budget rule's long profiles: the
    paper's models at one seed, beside peers trained and committed in an earlier sitting, whose
    checkpoints are gone): each run, validation curve, training job and relatedness entry of
    ``results_dir`` replaces the committed one of the same name; the committed ones it did not make
    are kept, provided ``config`` still makes them (:func:`_config_conflicts`, as
    :func:`update_digest` checks). The toolkit's runs (``kd.csv``) are merged the same way, by
    size, method and seed (:func:`_kd_conflicts` for the kept ones). The latency benchmarks
    (``latency.json``, ``kd_latency.json``) and the data statistics are the fresh run's where it
    made them. ``provenance.json`` is the fresh run's
    (``config`` its effective config), with one entry under ``kept`` per earlier sitting that made
    a kept run: its runs, commit, machine and packages (:func:`_kept_sittings`), so the page never
    hides that several sittings made it.
    """
    results, out = repo_path(results_dir), repo_path(digest_dir)
    committed = load_digest(out)
    fresh_runs, fresh_curves = _runs_table(results)
    old = pd.read_csv(out / "digest.csv")
    kept_runs = old[~old["run"].isin(fresh_runs["run"])]
    if conflicts := _config_conflicts(committed.config, config, sorted(set(kept_runs["model"]))):
        raise ValueError(f"the config differs from the committed digest's for the kept runs "
                         f"{sorted(kept_runs['run'])}: {conflicts}; rerun them")
    fresh_kd = _kd_table(results) if (results / "kd").is_dir() else None
    kept_kd = _kept_kd(committed.kd, fresh_kd)
    if len(kept_kd) and (conflicts := _kd_conflicts(committed.config, config, kept_kd)):
        raise ValueError(f"the config differs from the committed digest's for the kept toolkit runs "
                         f"{_kd_names(kept_kd)}: {conflicts}; rerun them")
    old_curves = committed.curves.rename(columns={"group": "model"})
    kept_curves = old_curves.merge(kept_runs[["model", "seed"]], on=["model", "seed"]) if len(old_curves) else old_curves
    jobs, old_jobs = stages(results), pd.read_csv(out / "stages.csv", dtype={"stage": str})
    merged = {
        "digest.csv": pd.concat([kept_runs, fresh_runs]).sort_values(["model", "seed"], kind="stable"),
        "curves.csv": pd.concat([kept_curves, *([fresh_curves] if len(fresh_curves) else [])])
        .sort_values(["model", "seed", "epoch"], kind="stable"),
        "stages.csv": pd.concat([old_jobs[~old_jobs["job"].isin(jobs["job"])], jobs]).sort_values("job", kind="stable"),
    }
    _write_tables(out, merged, DECIMALS)
    for name, source in (("latency.json", results / "benchmark" / "latency.json"),
                         (KD_LATENCY, results / "kd" / "latency.json")):
        if source.exists():
            with atomic_path(out / name) as tmp:
                shutil.copyfile(source, tmp)
    if (source := results / "claims" / "relatedness.json").exists():
        fresh = read_json(source)
        kept = {r: v for r, v in (committed.relatedness or {}).get("runs", {}).items() if r in set(kept_runs["run"])}
        write_json({**fresh, "runs": dict(sorted({**kept, **fresh["runs"]}.items()))}, out / "relatedness.json")
    if fresh_kd is not None:
        _write_tables(out, {KD_FILE: pd.concat([kept_kd, fresh_kd])[fresh_kd.columns]  # the fresh run's columns
                                     .sort_values(["size", "method", "seed"], kind="stable")}, DECIMALS)
    write_json(_data_stats(results), out / "data.json")
    write_json({**provenance(dict(config), results),
                "kept": _kept_sittings(committed.provenance, set(kept_runs["run"]) | set(_kd_names(kept_kd)))},
               out / "provenance.json")
    return out


def _kept_kd(committed: pd.DataFrame | None, fresh: pd.DataFrame | None) -> pd.DataFrame:
    """The committed toolkit runs a sitting keeps: those its own runs (``fresh``) do not make again.
    A sitting without toolkit runs leaves ``kd.csv`` as committed (none of it is "kept" anew)."""
    if committed is None or fresh is None:
        return pd.DataFrame(columns=["size", "method", "seed"])
    key = ["size", "method", "seed"]
    return committed[~committed.set_index(key).index.isin(fresh.set_index(key).index)]


def _kd_names(kd: pd.DataFrame) -> list[str]:
    """Toolkit runs by folder name, ``kd/<size>/<method>_s<seed>``."""
    return sorted(f"kd/{z}/{m}_s{s}" for z, m, s in zip(kd["size"], kd["method"], kd["seed"]))


def _kd_conflicts(old: Mapping[str, Any], new: Mapping[str, Any], kept: pd.DataFrame) -> list[str]:
    """Why kept toolkit runs made under config ``old`` would not be made under ``new``: the shared
    toolkit settings (its training, teacher seed, the teacher and its cache), a kept size's student
    or a kept method's entry."""
    before, after = old.get("kd") or {}, new.get("kd") or {}
    conflicts = [f"kd.{key}" for key in ("train", "teacher_seed") if before.get(key) != after.get(key)]
    conflicts += [f"distill.{key}" for key in ("teacher", "top_k", "negatives")
                  if (old.get("distill") or {}).get(key) != (new.get("distill") or {}).get(key)]
    for section, names in (("sizes", set(kept["size"])), ("methods", set(kept["method"]) - {"control"})):
        conflicts += [f"kd.{section}.{name}" for name in sorted(names)
                      if (before.get(section) or {}).get(name) != (after.get(section) or {}).get(name)]
    return conflicts


#: What a sitting's provenance says about where its runs were made.
_SITTING_KEYS = ("git_commit", "cpu", "cpu_count", "packages")


def _kept_sittings(before: Mapping[str, Any], kept: set[str]) -> list[dict[str, Any]]:
    """The earlier sittings whose runs a digest keeps, each with its runs, commit, machine and
    packages: those the committed provenance already listed under ``kept`` (one dict before
    sittings were listed), then the committed digest's own sitting, which made the rest. A sitting
    whose every run was made again drops out."""
    earlier = before.get("kept") or []
    earlier = [earlier] if isinstance(earlier, Mapping) else list(earlier)
    listed = {run for sitting in earlier for run in sitting["runs"]}
    last = {"runs": sorted(kept - listed), **{k: before.get(k) for k in _SITTING_KEYS}}
    sittings = [{**sitting, "runs": sorted(kept & set(sitting["runs"]))} for sitting in [*earlier, last]]
    return [sitting for sitting in sittings if sitting["runs"]]


def _read_optional(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.exists() else None


def load_digest(digest_dir: str | Path) -> Digest:
    """Read a digest folder written by :func:`build_digest`; a missing file is named."""
    path = repo_path(digest_dir)
    if not (path / "digest.csv").exists():
        raise FileNotFoundError(f"{path / 'digest.csv'} not found: run the pipeline (snakemake) "
                                "to build this dataset's digest")
    table = pd.read_csv(path / "digest.csv")
    runs = table.rename(columns={"model": "group", "architecture": "model", "last_epoch": "epochs_run"})
    runs["run"] = [f"{g}_s{s}" for g, s in zip(runs["group"], runs["seed"])]
    curves_file = path / "curves.csv"
    curves = pd.read_csv(curves_file) if curves_file.stat().st_size > 1 else pd.DataFrame()
    return Digest(runs=runs, curves=curves.rename(columns={"model": "group"}),
                  latency=_read_optional(path / "latency.json"),
                  relatedness=_read_optional(path / "relatedness.json"),
                  data=read_json(path / "data.json"), stages=pd.read_csv(path / "stages.csv"),
                  provenance=read_json(path / "provenance.json"),
                  kd=_read_table(path / KD_FILE),
                  kd_latency=_read_optional(path / KD_LATENCY),
                  teacher_cache=_read_table(path / TEACHER_CACHE_FILE), kd_cost=_read_table(path / KD_COST_FILE),
                  kd_longer=_read_table(path / KD_LONGER_FILE))


def _read_table(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The test-metric columns of a digest table (``NDCG@10``, ``rest:MRR``, ...)."""
    return [c for c in table.columns if "@" in c or c.endswith("MRR")]


def compare_digests(fresh_dir: str | Path, committed_dir: str | Path,
                    tolerance: float = TOLERANCE, subset: bool = False) -> list[str]:
    """Differences that break regeneration: runs missing on either side, every model's mean over
    seeds of every test metric (what the report prints and the claims rest on) further than
    ``tolerance`` from the committed mean, and every model's mean relatedness share likewise.

    Means, not single runs: with ``threads: 2`` Mixed Attention's runs moved by up to 0.0063 in
    one HR@k value (8 of 1,262 sessions) but its seed mean by 0.0045, while a wrong number in one
    run (+0.02) still moves its model's mean by 0.007. (BERT4Rec, far from converged, moved 0.021
    in its mean: this check fails it on another thread count.)
    With ``subset`` the fresh run is a smaller profile's (fewer peers or distillation methods, same
    data and settings): the committed runs it does not have are not problems, every run it has is
    compared.
    Returns human-readable problems, empty when the fresh run regenerates the committed one.
    """
    fresh, committed = load_digest(fresh_dir), load_digest(committed_dir)
    if subset:
        committed = _restricted(committed, fresh)
    problems = []
    key = ["group", "seed"]
    a, b = fresh.runs.set_index(key), committed.runs.set_index(key)
    for missing, where in ((b.index.difference(a.index), "fresh"), (a.index.difference(b.index), "committed")):
        problems += [f"run {g}_s{s} is missing from the {where} digest" for g, s in missing]
    both = a.index.intersection(b.index)
    columns = metric_columns(committed.runs)
    mean_a = a.loc[both, columns].groupby(level="group").mean()
    mean_b = b.loc[both, columns].groupby(level="group").mean()
    for column in columns:
        diff = (mean_a[column] - mean_b[column]).abs()
        for group, d in diff[diff > tolerance].items():
            problems.append(f"{group} {column}, mean over seeds: {mean_a.loc[group, column]:.4f} vs committed "
                            f"{mean_b.loc[group, column]:.4f} (|diff| {d:.4f} > {tolerance})")
    if fresh.relatedness and committed.relatedness:
        problems += _compare_relatedness(fresh.relatedness["runs"], committed.relatedness["runs"], tolerance)
    if committed.kd is not None:
        problems += _compare_kd(fresh.kd, committed.kd, tolerance)
    return problems


def _restricted(committed: Digest, fresh: Digest) -> Digest:
    """``committed`` with only the runs (models, distillation runs, relatedness) ``fresh`` has."""
    runs = committed.runs.merge(fresh.runs[["group", "seed"]], on=["group", "seed"])
    kd = committed.kd
    if kd is not None and fresh.kd is not None:
        kd = kd.merge(fresh.kd[["size", "method", "seed"]], on=["size", "method", "seed"])
    relatedness = committed.relatedness
    if relatedness and fresh.relatedness:
        relatedness = {**relatedness, "runs": {r: v for r, v in relatedness["runs"].items() if r in fresh.relatedness["runs"]}}
    return dataclasses.replace(committed, runs=runs, kd=kd, relatedness=relatedness)


def _compare_kd(fresh: pd.DataFrame | None, committed: pd.DataFrame, tolerance: float) -> list[str]:
    """The distillation toolkit's runs compared as the models are: each (size, method)'s mean over
    seeds of every test metric."""
    if fresh is None:
        return ["kd.csv is missing from the fresh digest"]
    key = ["size", "method", "seed"]
    a, b = fresh.set_index(key), committed.set_index(key)
    problems = [f"kd run {z}/{m}_s{s} is missing from the {where} digest"
                for missing, where in ((b.index.difference(a.index), "fresh"), (a.index.difference(b.index), "committed"))
                for z, m, s in missing]
    both = a.index.intersection(b.index)
    columns = [c for c in metric_columns(committed) if c in a.columns]
    mean_a = a.loc[both, columns].groupby(level=["size", "method"]).mean()
    mean_b = b.loc[both, columns].groupby(level=["size", "method"]).mean()
    for column in columns:
        diff = (mean_a[column] - mean_b[column]).abs()
        for (size, method), d in diff[diff > tolerance].items():
            problems.append(f"kd {size}/{method} {column}, mean over seeds: {mean_a.loc[(size, method), column]:.4f} vs "
                            f"committed {mean_b.loc[(size, method), column]:.4f} (|diff| {d:.4f} > {tolerance})")
    return problems


def _compare_relatedness(fresh: Mapping[str, Mapping[str, Any]], committed: Mapping[str, Mapping[str, Any]],
                         tolerance: float) -> list[str]:
    """Relatedness shares (claim C6) compared as the metrics are: each model's mean over seeds.
    A share is over a few hundred recommendations, so one item more or less moves a single run by
    0.007 on another thread count (measured with ``threads: 2``: at most 0.0073 per run, 0.0025 in
    a seed mean), while C6's verdict rests on the means."""
    problems = [f"relatedness of {run} is missing from the fresh digest" for run in committed if run not in fresh]

    def means(runs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
        table = pd.DataFrame.from_dict({r: s for r, s in runs.items() if r in fresh and r in committed}, orient="index")
        table = table.select_dtypes("number")
        return table.groupby(table.index.str.rsplit("_s", n=1).str[0]).mean()

    mean_a, mean_b = means(fresh), means(committed)
    for column in mean_b.columns:
        diff = (mean_a[column] - mean_b[column]).abs()
        for group, d in diff[diff > tolerance].items():
            problems.append(f"relatedness {group} {column}, mean over seeds: {mean_a.loc[group, column]:.4f} vs "
                            f"committed {mean_b.loc[group, column]:.4f} (|diff| {d:.4f} > {tolerance})")
    return problems


def config_hash(config: Mapping[str, Any]) -> str:
    """A stable hash of an effective config (key order does not matter)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    """``python -m recpress_utils.report.digest --results R --out D --config JSON``: build a digest;
    ``--compare FRESH COMMITTED``: exit 1 with the differences when a run does not regenerate."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results")
    parser.add_argument("--out")
    parser.add_argument("--config", default="{}", help="the effective config, JSON (with --update: a profile file)")
    parser.add_argument("--compare", nargs=2, metavar=("FRESH", "COMMITTED"))
    parser.add_argument("--update", nargs="+", metavar="GROUP",
                        help="replace only these run groups' rows (sasrec) or toolkit groups' (e16/multi) in the "
                             "digest at --out (update_digest); "
                             "--config names the profile then, e.g. config/ml-100k.yaml")
    parser.add_argument("--extend", action="store_true",
                        help="add the runs of --results to the digest at --out, keeping the committed runs it "
                             "lacks (extend_digest); --config names the profile, e.g. config/yoochoose1_64.yaml")
    parser.add_argument("--kd-longer", action="store_true",
                        help="write only <out>/kd_longer.csv from the toolkit runs of --results, a results folder "
                             "whose profile raised kd.train.epochs (kd_longer_table); with --update e16/soft_ce, "
                             "replace only those toolkit groups' rows in it (updated_kd_longer)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE)
    args = parser.parse_args(argv)
    if args.compare:
        problems = compare_digests(*args.compare, tolerance=args.tolerance)
        print("\n".join(problems) or f"regenerated within {args.tolerance}")
        sys.exit(1 if problems else 0)
    if not (args.results and args.out):
        parser.error("--results and --out are required to build a digest")
    if args.kd_longer:
        out = repo_path(args.out)
        table = (updated_kd_longer(args.results, pd.read_csv(out / KD_LONGER_FILE), args.update) if args.update
                 else kd_longer_table(args.results))
        _write_tables(out, {KD_LONGER_FILE: table}, DECIMALS if args.update else None)
        return
    if args.update or args.extend:
        from recpress_utils.config import load_config

        if args.update:
            update_digest(args.results, args.out, load_config(args.config), args.update)
        else:
            extend_digest(args.results, args.out, load_config(args.config))
        return
    build_digest(args.results, args.out, json.loads(args.config))


if __name__ == "__main__":
    main()
