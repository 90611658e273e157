"""Does distilling from the teacher's cached top-K cost the student accuracy, and what does it save?

Two measurements of :mod:`recpress_utils.distill.teacher_cache` against the paper's way (the
teacher's full distribution over every item, on the fly, and the student's full softmax):

- :func:`time_variants`: seconds per training epoch of the three ways to distil, from a fixed
  number of steps with initial weights (cost does not depend on the weights), plus the one-off
  cost of building the cache. Cheap: it needs no trained teacher.
- :func:`compare`: the student distilled from the profile's *trained* teacher both ways, the same
  seed, temperature and epoch budget: validation and test MRR@20, seconds per epoch and the
  process's peak memory. One mode per call, so each peak is that mode's alone; each call adds
  its row to ``reports/<dataset>/teacher_cache.csv``, which the dataset's report page prints.

Full-vocabulary KD at 37k items costs several times the cached way per epoch, so the comparison
runs a stated budget of epochs (``--epochs``) rather than to early stopping; both modes get the
same budget and keep their best epoch on validation. Runs resume from their epoch checkpoints
(``results/<dataset>/bench/teacher_cache/``)::

    python -m recpress_utils.distill.cache_bench compare --configfile config/yoochoose1_64.yaml --mode full
    python -m recpress_utils.distill.cache_bench compare --configfile config/yoochoose1_64.yaml --mode cached
    python -m recpress_utils.distill.cache_bench time results/yoochoose1_64/prepared \\
        --neighbors results/yoochoose1_64/kg/neighbors.pt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

from recpress_utils.io import read_json, replace_rows, write_json
from recpress_utils.latency import peak_rss_mb
from recpress_utils.paths import repo_path

#: the comparison's two ways to distil: the profile's cache settings, or the teacher's full distribution
MODES = ("cached", "full")
#: what makes a row of the comparison table unique (a rerun replaces its row)
KEYS = ["mode", "temperature", "seed", "epochs"]
#: the validation metric a row keeps (at the best epoch, which the profile's select_metric picks)
METRIC = "MRR@20"
#: the test metrics a row keeps (the session benchmarks' published metrics)
TEST_METRICS = (METRIC, "HR@20")


def time_variants(prepared_dir: str, neighbors_path: str | None = None, temperature: float = 1.0,
                  top_k: int = 100, n_negatives: int = 2048, uniform_mix: float = 0.05,
                  n_batches: int = 60, batch_size: int = 256, max_len: int = 50,
                  threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Seconds per training epoch of the student under the three ways to distil on a large catalogue:
    the teacher on the fly over every item (the paper), the cached top-K with the student's full
    softmax, and the cached top-K with the student's sampled pool; plus the one-off cost of
    building the cache over every training prefix.

    Cost does not depend on the weights, so the teacher (Mixed Attention with the dataset's KG
    tables when ``neighbors_path`` is given) and the student have their initial weights; each
    variant takes the same ``n_batches`` training steps (forward, backward, Adam) on the real
    training windows, and the epoch time is the per-step mean times the epoch's batches.
    Validation is not included (it is the same for all three).
    """
    from recpress_utils.distill.soft_labels import distillation_loss
    from recpress_utils.distill.teacher_cache import build_teacher_cache
    from recpress_utils.losses import PopularityPool
    from recpress_utils.runs import build_for_data, train_counts
    from recpress_utils.sequences import load_sessions, train_batches, training_windows
    from recpress_utils.train import set_determinism

    set_determinism(seed, threads)
    windows = training_windows(load_sessions(prepared_dir, "train"), max_len)
    teacher = build_for_data("mixed_attention", prepared_dir, {}, neighbors_path=neighbors_path)
    student = build_for_data("student", prepared_dir, {})
    started = time.perf_counter()
    cache = build_teacher_cache(teacher, windows, top_k, temperature, batch_size, progress=True)
    cache_seconds = time.perf_counter() - started
    epoch_batches = sum(1 for _ in train_batches(windows, batch_size, torch.Generator().manual_seed(seed), max_len))
    pool = PopularityPool(train_counts(prepared_dir), n_negatives, uniform_mix, seed)
    variants = {"on the fly, full vocabulary": distillation_loss(teacher, temperature),
                f"cached top-{top_k}, student full softmax": distillation_loss(teacher, temperature, cache=cache),
                f"cached top-{top_k}, student pool of {n_negatives}": distillation_loss(teacher, temperature,
                                                                                   cache=cache, pool=pool)}
    out: dict[str, Any] = {"items": student.n_items - 1, "training_windows": len(windows), "epoch_batches": epoch_batches,
                           "timed_batches": n_batches, "threads": threads, "top_k": top_k, "n_negatives": n_negatives,
                           "cache_build_seconds": round(cache_seconds, 1), "cache_prefixes": len(cache.keys),
                           "seconds_per_epoch": {}}
    for name, loss in variants.items():
        optimiser = torch.optim.Adam(student.parameters(), lr=1e-3)
        student.train()
        batches = train_batches(windows, batch_size, torch.Generator().manual_seed(seed), max_len)
        elapsed = 0.0
        for step, (inputs, targets) in enumerate(batches):
            if step == n_batches + 1:
                break
            started = time.perf_counter()
            optimiser.zero_grad(set_to_none=True)
            loss(student, inputs, targets).backward()
            optimiser.step()
            elapsed += (time.perf_counter() - started) if step else 0.0  # the first step warms up
        out["seconds_per_epoch"][name] = round(elapsed / n_batches * epoch_batches, 1)
    full = out["seconds_per_epoch"]["on the fly, full vocabulary"]
    for name, seconds in out["seconds_per_epoch"].items():
        print(f"{name:45s} {seconds:8.1f} s per epoch  ({full / seconds:5.1f}x faster than on the fly)")
    print(f"cache: {out['cache_prefixes']:,} prefixes built once in {cache_seconds:.1f} s")
    return out


def compare(config: Mapping[str, Any], mode: str, epochs: int, temperature: float | None = None,
            seed: int | None = None, progress: bool = True) -> dict[str, Any]:
    """Distil the profile's student from its trained teacher (``distill.teacher``, the seed's run)
    for ``epochs`` epochs, the ``mode``'s way, and return the comparison table's row.

    ``cached``: the profile's ``distill.top_k`` and ``distill.negatives`` (what its pipeline
    runs); ``full``: neither (the teacher's whole distribution each step, the student's full
    softmax). Everything else (seed, temperature, training settings) is the profile's, with
    early stopping's patience set to the budget so both modes train every epoch of it.
    ``temperature`` defaults to the profile's ``benchmark.student_temperature``, ``seed`` to
    its first seed. A finished run is read back, not trained again.
    """
    from dataclasses import replace

    from recpress_utils.config import results_folder, stage_params
    from recpress_utils.runs import distill_run
    from recpress_utils.train import TrainConfig

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs}")
    if config["distill"]["top_k"] is None:
        raise ValueError("the profile distils without a cache (distill.top_k: null): there is nothing to compare")
    p = stage_params(config, "05_distill", {"temperature": temperature, "seed": seed})
    top_k, negatives = (None, None) if mode == "full" else (p["top_k"], p["negatives"])
    run_dir = repo_path(f"{results_folder(config)}/bench/teacher_cache/{mode}_T{p['temperature']:g}_s{p['seed']}_e{epochs}")
    if not (run_dir / "metrics.json").exists():
        teacher = {"model": p["teacher_model"], "model_kwargs": p["teacher_kwargs"],
                   "checkpoint": repo_path(p["teacher_checkpoint"]),
                   "neighbors_path": repo_path(p["neighbors_path"]) if p["neighbors_path"] else None}
        cfg = replace(TrainConfig.from_dict(p["train"]), epochs=epochs, patience=epochs)
        _, _, metrics = distill_run(repo_path(p["prepared_dir"]), run_dir, teacher, p["student_kwargs"], cfg,
                                    temperature=p["temperature"], seed=p["seed"], threads=p["threads"],
                                    hard_weight=p["hard_weight"], progress=progress, top_k=top_k, negatives=negatives)
        write_json({"peak_rss_mb": round(peak_rss_mb(), 1)}, run_dir / "memory.json")
    return table_row(run_dir, mode, epochs)


def table_row(run_dir: Path, mode: str, epochs: int) -> dict[str, Any]:
    """The comparison table's row of a finished run (its ``metrics.json`` and ``memory.json``)."""
    metrics = read_json(run_dir / "metrics.json")
    cache = metrics["teacher_cache"] or {}
    best = next(h for h in metrics["history"] if h["epoch"] == metrics["best_epoch"])  # by the profile's metric
    train_only = [h["epoch_seconds"] for h in metrics["history"]]  # validation excluded
    return {
        "mode": mode, "temperature": metrics["temperature"], "seed": metrics["seed"], "epochs": epochs,
        "top_k": cache.get("top_k"), "n_negatives": (cache.get("negatives") or {}).get("n_negatives"),
        "best_epoch": metrics["best_epoch"], f"valid_{METRIC}": round(best[METRIC], 6),
        **{f"test_{m}": round(metrics["test"][m], 6) for m in TEST_METRICS},
        "cache_seconds": cache.get("seconds", 0.0),
        "seconds_per_epoch": round(sum(train_only) / len(train_only), 1),
        "train_seconds": round(metrics["train_seconds"], 1),
        "peak_rss_mb": read_json(run_dir / "memory.json")["peak_rss_mb"],
        "threads": metrics["threads"],
    }


def add_row(path: str | Path, row: Mapping[str, Any]) -> pd.DataFrame:
    """Add ``row`` to the CSV at ``path`` (replacing a row with the same :data:`KEYS`), sorted by
    the keys, written atomically; returns the table."""
    return replace_rows(path, pd.DataFrame([row]), match=KEYS, order=KEYS)


def main(argv: list[str] | None = None) -> None:
    from recpress_utils.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("compare", help="distil from the trained teacher one mode's way; add its row")
    run.add_argument("--configfile", required=True, help="the dataset profile, e.g. config/yoochoose1_64.yaml")
    run.add_argument("--mode", choices=MODES, required=True)
    run.add_argument("--epochs", type=int, default=3, help="the budget both modes train (default 3)")
    run.add_argument("--temperature", type=float, help="default: the profile's benchmark.student_temperature")
    run.add_argument("--seed", type=int, help="default: the profile's first seed")
    run.add_argument("--out", help="default: reports/<dataset>/teacher_cache.csv")
    timing = commands.add_parser("time", help="seconds per epoch of the three ways, initial weights")
    timing.add_argument("prepared_dir", help="a prepared dataset, e.g. results/yoochoose1_64/prepared")
    timing.add_argument("--neighbors", help="the dataset's KG tables (kg/neighbors.pt) for the teacher")
    timing.add_argument("--top-k", type=int, default=100)
    timing.add_argument("--negatives", type=int, default=2048)
    timing.add_argument("--batches", type=int, default=60)
    timing.add_argument("--out", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "time":
        result = time_variants(args.prepared_dir, args.neighbors, top_k=args.top_k, n_negatives=args.negatives,
                               n_batches=args.batches)
        if args.out:
            write_json(result, args.out)
        return
    config = load_config(args.configfile)
    row = compare(config, args.mode, args.epochs, args.temperature, args.seed)
    from recpress_utils.report.digest import TEACHER_CACHE_FILE

    out = repo_path(args.out or f"reports/{config['dataset']}/{TEACHER_CACHE_FILE}")
    print(add_row(out, row).to_string(index=False))
    print(f"written: {out}")


if __name__ == "__main__":
    main()
