"""Committed hyperparameter sweeps: a plain grid over one model's settings, scored on validation.

A profile's settings for a model are chosen here, never on test data: every grid point is fitted
on the training split (without the validation sessions: no refit) and scored on the validation
split, the newest sessions of training time, with the metric the profile selects epochs by. The
table of every point's validation scores is written as CSV beside the profiles
(``config/sweeps/<profile>/<model>.csv``) so a reader sees what was tried and why the profile
holds what it holds; the best point is printed as the ``settings`` to copy into the profile.

    python -m recpress_utils.sweep --configfile config/yoochoose1_64.yaml --model vsknn \\
        --grid k=50,100,200,500 sample_size=500,1000,2500

``--append`` adds a refined round (around the best point) to the committed table.

A point's fit can take an hour on a real dataset, so a sweep survives being killed: each point
trains in its own folder beside the prepared data (``results/<dataset>/sweeps/<model>/<key>/``,
the key a hash of everything that decides the fit), checkpointing every epoch, and leaves its
validation scores there when done. The same command run again skips the finished points and
resumes the interrupted one after its last epoch; a changed setting is a new key, so stale
scores are never reused.

Keys of ``--grid`` are the model's constructor ``settings``; ``train.<key>`` sweeps a training
setting (``train.lr=0.001,0.003``), ``loss.<key>`` one of its loss (``loss.mask_prob=0.2,0.4``).
Values are YAML scalars (``none`` or ``null`` for None).

A distillation method of the profile's ``kd.methods`` is swept the same way, its settings as the
keys, the student at one size (``--size``, default the first of ``kd.sizes``) learning from the
profile's trained teachers of the seed (their runs must exist)::

    python -m recpress_utils.sweep --configfile config/yoochoose1_64.yaml --kd-method rd \
        --grid weight=0.1,0.3,1 top_k=10,30

writes ``config/sweeps/<profile>/kd_<method>.csv``. ``--seed 42 43`` trains every point at each
student seed and ranks the points by their mean: at a few epochs the seeds of one setting can
differ by more than the points do. Every point reads the teacher's top-K from one
cache file: the pipeline's (``results/<dataset>/teacher_cache/``) when it holds the grid's
temperatures, else one the sweep builds once beside its points. A point at the profile's own
settings reads the pipeline's run of that method, size and seed when it exists
(:func:`pipeline_scores`) instead of training it again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd
import torch
from tqdm import tqdm

from recpress_utils.config import CONFIG_FILE, load_config, model_spec, results_folder
from recpress_utils.grid import best_first, edge_keys, edge_text, grid_points, parse_grid
from recpress_utils.io import atomic_path, read_json
from recpress_utils.losses import build_loss
from recpress_utils.metrics import metric_names
from recpress_utils.paths import repo_path
from recpress_utils.runs import (CHECKPOINT, KDJob, ModelSpec, build_for_data, fit_counts, teacher_cache_run,
                                 train_counts)
from recpress_utils.sequences import load_sessions
from recpress_utils.train import TrainConfig, eval_sample, evaluate, fit, set_determinism


def validation_scores(spec: ModelSpec, prepared_dir: str | Path, cfg: TrainConfig, seed: int,
                      threads: int, checkpoint: Path | None = None) -> dict[str, float]:
    """Fit ``spec`` on the training split and score it on the validation split (last target of
    each validation session, as early stopping does). Returns the metrics plus ``seconds`` (the
    training seconds of every attempt, when a ``checkpoint`` resumed it, and the scoring).
    ``checkpoint``: where the fit saves its state every epoch and resumes from (kept: the caller
    removes it once the scores are safe)."""
    started = time.perf_counter()
    set_determinism(seed, threads)
    train, valid = (load_sessions(prepared_dir, s) for s in ("train", "valid"))
    net = build_for_data(spec.architecture, prepared_dir, spec.settings)
    loss = build_loss(spec.loss, seed, cfg.loss_positions, spec.loss_settings,
                      item_counts=train_counts(prepared_dir))
    if loss is None:
        train_seconds = fit_counts(net, train).train_seconds
    else:
        train_seconds = fit(net, train, valid, cfg, seed, loss_fn=loss, progress=False, checkpoint=checkpoint,
                            keep_checkpoint=checkpoint is not None).train_seconds
    scoring = time.perf_counter()
    device = next(net.parameters()).device  # where fit left it (CUDA when present)
    metrics = evaluate(net, eval_sample(valid, cfg), "last", cfg.eval_batch_size, cfg.max_len, device, cfg.exclude_seen).result()
    if loss is None:
        train_seconds = scoring - started  # nothing to resume: the whole call
    return {**metrics, "seconds": round(train_seconds + time.perf_counter() - scoring, 1)}


def point_dir(work_dir: Path, fields: Mapping[str, Any]) -> Path:
    """The folder of one grid point's fit: ``work_dir`` / a hash of ``fields``, everything that
    decides the fit (settings, training settings, seed, data), so a changed one gets a new folder."""
    key = hashlib.sha1(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return work_dir / key


def scored_once(folder: Path, score: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """``folder/scores.json`` if a finished run left it; else ``score(checkpoint path)``, its
    result written there first and only then the checkpoint removed (a kill in between costs
    nothing but the scoring)."""
    done = folder / "scores.json"
    if done.exists():
        return read_json(done)
    folder.mkdir(parents=True, exist_ok=True)
    scores = score(folder / CHECKPOINT)
    with atomic_path(done) as tmp:  # not write_json: the metrics keep their order, the table's columns
        tmp.write_text(json.dumps(scores, indent=1) + "\n")
    (folder / CHECKPOINT).unlink(missing_ok=True)
    return scores


def sweep(config: Mapping[str, Any], model: str, grid: Mapping[str, list[Any]],
          seed: int | None = None, prepared_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per grid point: its settings, the validation metrics, seconds; best first by the
    model's ``select_metric`` (ties: the earlier grid point). ``prepared_dir`` defaults to the
    profile's prepared data."""
    base = model_spec(config, model)
    prepared = prepared_dir or repo_path(results_folder(config)) / "prepared"
    seed = config["seeds"][0] if seed is None else seed
    rows = []
    for point in tqdm(grid_points(grid), desc=f"sweep {model}"):
        settings = {k: v for k, v in point.items() if "." not in k}
        train = {k.removeprefix("train."): v for k, v in point.items() if k.startswith("train.")}
        loss = {k.removeprefix("loss."): v for k, v in point.items() if k.startswith("loss.")}
        spec = ModelSpec(base.name, base.architecture, base.loss, {**base.loss_settings, **loss},
                         {**base.settings, **settings}, {**base.train, **train})
        cfg = spec.train_config(config["train"])
        folder = point_dir(Path(prepared).parent / "sweeps" / model,
                           {"spec": asdict(spec), "train": asdict(cfg), "seed": seed, "data": str(prepared)})
        scores = scored_once(folder, lambda checkpoint: validation_scores(spec, prepared, cfg, seed, config["threads"],
                                                                          checkpoint))
        rows.append({**point, **scores})
    return best_first(pd.DataFrame(rows), list(grid), base.train_config(config["train"]).select_metric)


def kd_sweep(config: Mapping[str, Any], method: str, grid: Mapping[str, list[Any]], size: str | None = None,
             seeds: Sequence[int] | None = None) -> pd.DataFrame:
    """One row per grid point of ``kd.methods.<method>``'s settings and seed, led by the student's
    ``size`` and ``seed``: the student distilled with them on the training split and scored on the
    validation split; the best point first by its mean ``select_metric`` over ``seeds``
    (:func:`recpress_utils.grid.best_first`). The teachers are the profile's trained runs of
    ``kd.teacher_seed`` (or of each seed, for a teacher trained per seed); ``seeds`` None: the
    first of ``kd.seeds``."""
    size = size or next(iter(config["kd"]["sizes"]))
    rows, metric = [], ""
    for seed in seeds or [None]:
        seed_rows, metric = _kd_sweep_seed(config, method, grid, size, seed)
        rows += seed_rows
    return best_first(pd.DataFrame(rows), ["size", *grid], metric)


def _kd_sweep_seed(config: Mapping[str, Any], method: str, grid: Mapping[str, list[Any]], size: str,
                   seed: int | None) -> tuple[list[dict[str, Any]], str]:
    """:func:`kd_sweep`'s rows of one student seed (None: the first of ``kd.seeds``), and the
    metric they are ranked by."""
    from recpress_utils.config import stage_params
    from recpress_utils.runs import kd_fit

    params = stage_params(config, "09_kd", {"size": size, "method": method, "seed": seed})  # seed None: kd.seeds' first
    seed = params["seed"]
    missing = [t["checkpoint"] for t in params["teachers"] if not repo_path(t["checkpoint"]).exists()]
    if missing and method != "control" and config["kd"]["methods"][method]["method"] != "mutual":
        raise FileNotFoundError(f"train the teachers first (snakemake ... {' '.join(missing)})")
    teachers = [{**t, "checkpoint": str(repo_path(t["checkpoint"])),
                 "neighbors_path": str(repo_path(t["neighbors_path"])) if t["neighbors_path"] else ""}
                for t in params["teachers"]]
    cfg = TrainConfig.from_dict(params["train"])
    prepared = repo_path(params["prepared_dir"])
    work_dir = prepared.parent / "sweeps" / f"kd_{method}_{size}"
    settings = params["method_spec"].get("settings", {})
    temperatures = sorted({float({**settings, **point}.get("temperature", 1.0)) for point in grid_points(grid)})
    caches = sweep_teacher_caches(params["teacher_caches"], teachers, temperatures, work_dir, prepared, cfg, seed,
                                  config["threads"], params["top_k"])
    rows = []
    for point in tqdm(grid_points(grid), desc=f"sweep kd {method}, seed {seed}"):
        spec = {**params["method_spec"], "settings": {**settings, **point}}
        job = KDJob(method, spec, teachers, params["student_kwargs"], params["student_loss"], cfg, seed,
                    config["threads"], params["top_k"], params["negatives"], caches)

        def score(checkpoint: Path, job: KDJob = job) -> dict[str, Any]:
            student, result, _ = kd_fit(prepared, job, progress=False, checkpoint=checkpoint)
            scoring = time.perf_counter()
            metrics = evaluate(student, eval_sample(load_sessions(prepared, "valid"), cfg), "last",
                               cfg.eval_batch_size, cfg.max_len, next(student.parameters()).device,
                               cfg.exclude_seen).result()
            return {**metrics, "seconds": round(result.train_seconds + time.perf_counter() - scoring, 1)}

        fields = asdict(job)
        del fields["teacher_caches"]  # the same teacher's top-K wherever it was cached: not a new fit
        folder = point_dir(work_dir, {"job": fields, "data": str(prepared)})
        scores = pipeline_scores(repo_path(params["run_dir"]), job) or scored_once(folder, score)
        rows.append({"size": size, "seed": seed, **point, **scores})
    return rows, cfg.select_metric


def pipeline_scores(run_dir: Path, job: KDJob) -> dict[str, Any] | None:
    """The validation scores of the pipeline's run of this very fit, or None: ``run_dir`` (the
    profile's run of the method, size and seed) holds one when its ``metrics.json`` records the same
    method settings (defaults filled in), student, student loss, teachers, training settings and
    seed as ``job``. Its best epoch's row of the validation
    history is then what the point would train for (Yoochoose e16, RRD and DE at weight 0.01: equal
    to every digit), and the point at the profile's settings costs nothing instead of a retraining.
    ``seconds`` is that run's training time."""
    from recpress_utils.distill import method_defaults

    path = run_dir / "metrics.json"
    if not path.exists() or job.method_settings is None:
        return None
    run = read_json(path)
    kind = job.method_settings["method"]

    def effective(spec: Mapping[str, Any]) -> dict[str, Any]:
        return {**method_defaults(kind), **(spec.get("settings") or {})}

    def checkpoints(teachers: list[Mapping[str, Any]]) -> list[Path]:
        return [Path(t["checkpoint"]).resolve() for t in teachers]

    recorded = run["kd"]
    same = (recorded["spec"].get("method") == kind
            and recorded["spec"].get("teacher") == job.method_settings.get("teacher")
            and effective(recorded["spec"]) == effective(job.method_settings)
            and run["model_kwargs"] == job.student_kwargs and recorded["student_loss"] == dict(job.student_loss)
            and checkpoints(recorded["teachers"]) == checkpoints(job.teachers)
            and run["train_config"] == asdict(job.train_cfg) and run["seed"] == job.seed)
    if not same:
        return None
    best = run["history"][run["best_epoch"] - 1]
    return {**{name: best[name] for name in metric_names()}, "seconds": round(run["train_seconds"], 1)}


def sweep_teacher_caches(files: list[str], teachers: list[Mapping[str, Any]], temperatures: list[float],
                         work_dir: Path, prepared: Path, cfg: TrainConfig, seed: int, threads: int,
                         top_k: int | None) -> list[str]:
    """Per teacher, the top-K cache file every grid point reads ("" where the method reads none,
    as ``files``, the pipeline's cache paths, say): the pipeline's own file when it holds every
    ``temperature`` of the grid, else one built here once for the whole sweep in ``work_dir``.
    Without it each point would run the teacher over every training prefix again, 25 minutes a
    point on Diginetica; a point's scores do not depend on where its cache came from."""
    out = []
    for teacher, path in zip(teachers, files):
        pipeline = repo_path(path) if path else None
        if pipeline is None or top_k is None:
            out.append("")
        elif pipeline.exists() and _holds(pipeline, temperatures):
            out.append(str(pipeline))
        else:
            name = f"teacher_cache_{Path(teacher['checkpoint']).parent.name}_T{'-'.join(f'{t:g}' for t in temperatures)}"
            own = work_dir / f"{name}_k{top_k}_s{seed}.pt"
            if not own.exists():
                own.parent.mkdir(parents=True, exist_ok=True)
                teacher_cache_run(prepared, own, teacher, cfg, seed, threads, top_k, temperatures)
            out.append(str(own))
    return out


def _holds(cache_file: Path, temperatures: list[float]) -> bool:
    """Whether the teacher cache file was built for every one of ``temperatures`` (memory-mapped:
    the file is gigabytes at 40k items; only its temperature list is read)."""
    built = torch.load(cache_file, weights_only=True, mmap=True)["temperatures"].tolist()
    return all(any(abs(b - t) < 1e-9 for b in built) for t in temperatures)


def merge_tables(old: pd.DataFrame, new: pd.DataFrame, keys: list[str], metric: str,
                 committed_at: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The committed table with a new round's rows (a point scored again keeps its new row), the
    best point first by its mean ``metric`` over seeds, in the new round's column order. Every row
    must say which settings it scored: a round that sweeps a key the committed rows did not (widening a sweep to
    ``train.lr``, say) needs ``committed_at``, the value those rows ran at (the profile's setting
    when they were scored), which the table cannot know."""
    committed_at = dict(committed_at or {})
    added = [c for c in new.columns if c not in old.columns]
    if stray := sorted(set(committed_at) - set(added)):
        raise ValueError(f"--committed-at {stray}: not a key this round adds to the committed table "
                         f"({added or 'none'})")
    if unknown := [c for c in added if c not in committed_at]:
        raise ValueError(f"this round sweeps {unknown}, which the committed table does not: give the value its "
                         "rows ran at (--committed-at key=value), or start a new table")
    old = old.assign(**committed_at)
    if differ := sorted(set(old.columns) ^ set(new.columns)):
        raise ValueError(f"the committed table and this round differ in {differ}: sweep the same keys (and metrics),"
                         " or start a new table")
    merged = pd.concat([old[list(new.columns)], new], ignore_index=True)
    merged = merged.drop_duplicates(subset=keys, keep="last")
    return best_first(merged, [k for k in keys if k != "seed"], metric)


def _single_values(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=0.001"]`` -> ``{"train.lr": 0.001}``, read as the grid's values are."""
    values = parse_grid(pairs)
    if several := [k for k, v in values.items() if len(v) != 1]:
        raise ValueError(f"one value each: {several}")
    return {k: v[0] for k, v in values.items()}


def sweep_path(profile: str | Path, model: str) -> Path:
    """Where a profile's sweep table of ``model`` is committed (``default`` for config.yaml)."""
    name = "default" if Path(profile).name == Path(CONFIG_FILE).name else Path(profile).stem
    return repo_path("config") / "sweeps" / name / f"{model}.csv"


def main(argv: list[str] | None = None) -> None:
    """Run a sweep, write its table (atomically) and print the best point's settings."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", required=True, help="the profile, e.g. config/yoochoose1_64.yaml")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", help="a name in the profile's models")
    what.add_argument("--kd-method", help="a name in the profile's kd.methods")
    parser.add_argument("--size", help="with --kd-method: the student size (default the first of kd.sizes)")
    parser.add_argument("--grid", nargs="+", required=True,
                        help="key=v1,v2 ... (settings, train.<key> or loss.<key>; a method's settings)")
    parser.add_argument("--seed", type=int, nargs="+", default=None,
                        help="default: the profile's first seed; with --kd-method several, each point scored by "
                             "its mean over them")
    parser.add_argument("--append", action="store_true",
                        help="add to the committed table (a grid refined around its best), not replace it")
    parser.add_argument("--committed-at", nargs="+", default=[], metavar="KEY=VALUE",
                        help="with --append, for a key of --grid the committed table lacks: the value its rows ran at")
    args = parser.parse_args(argv)
    committed_at = _single_values(args.committed_at)
    if committed_at and not args.append:
        parser.error("--committed-at goes with --append")  # before any point trains
    if args.model and args.seed and len(args.seed) > 1:
        parser.error("a model's sweep table holds one seed (it has no seed column): several seeds need --kd-method")
    config = load_config(args.configfile)
    grid = parse_grid(args.grid)
    if args.model:
        table = sweep(config, args.model, grid, args.seed[0] if args.seed else None)
        out = sweep_path(args.configfile, args.model)
        metric = model_spec(config, args.model).train_config(config["train"]).select_metric
    else:
        table = kd_sweep(config, args.kd_method, grid, args.size, args.seed)
        out = sweep_path(args.configfile, f"kd_{args.kd_method}")
        metric = model_spec(config, "student").train_config(config["train"]).select_metric
    if args.append and out.exists():
        keys = list(grid) if args.model else ["size", "seed", *grid]
        table = merge_tables(pd.read_csv(out), table, keys, metric, committed_at)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        table.round(6).to_csv(tmp, index=False)
    print(table.to_string(max_cols=12))
    best = {k: table[k].iloc[0] for k in grid}  # per column: ints stay ints
    over = f" (mean over seeds {', '.join(map(str, args.seed))})" if args.seed and len(args.seed) > 1 else ""
    print(f"best on validation{over}: {best}  -> {out}")
    edges = edge_keys(table, list(grid))
    if edges:
        print(f"warning: the best point is {edge_text(edges)}; widen the grid past it before trusting the choice")


if __name__ == "__main__":
    main()
