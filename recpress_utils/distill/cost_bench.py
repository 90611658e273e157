"""What does each distillation method cost per training step, against the no-KD control?

A toolkit run records its wall-clock training seconds, and on a machine it shares with other jobs
those say more about the load than about the method (the same control took 130 s and 167 s on
Yoochoose 1/64). This benchmark answers the issue's "with how much extra training time?" from one
process: each configured method of a profile (:func:`recpress_utils.runs.kd_student_and_loss`:
the run's own teachers, teacher caches, sampled pool and student) takes the same ``steps``
training steps (forward, backward, AdamW) on the same batches, after one warm-up step, in blocks
that alternate with blocks of the control, so a change of load while it runs reaches both alike;
its ratio is the median of its blocks over the median of the control's beside them. Validation (the same for every
method) and the one-off loading of teachers and caches are not counted. The ratio to the
control's median is what the report's *x control time* shows where this table exists.

Each block is timed on two clocks. Wall seconds (``seconds_per_step``) are what a user waits;
on a machine shared with other jobs they also count the time the process waited for a core,
and blocks alternating a few seconds apart still saw different waits (on Diginetica, beside
two training jobs, relational KD came out at 0.94x the control: less than a loss it only adds
to). The process's CPU seconds (``cpu_seconds_per_step``, the job runs a fixed number of threads)
leave the waiting out, so on a CPU the ratio is taken from them (``clock``: ``cpu``); on a GPU,
where the process's CPU time says nothing about the kernels it launched, from wall seconds
(``clock``: ``wall``)::

    python -m recpress_utils.distill.cost_bench --configfile config/yoochoose1_64.yaml --size e16

writes ``reports/<dataset>/kd_cost.csv`` (one row per method and size; a rerun replaces its
size's rows). The teachers' runs (and for born-again the control's) must exist, as for a sweep.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from tqdm import tqdm

from recpress_utils.config import KD_CONTROL
from recpress_utils.io import replace_rows
from recpress_utils.paths import repo_path

#: what makes a row unique (a rerun of a size replaces that size's rows)
KEYS = ["size", "method"]


def _job(config: Mapping[str, Any], method: str, size: str, seed: int | None):
    """The toolkit run's job of ``method`` (or the control) at ``size`` and ``seed`` and its
    prepared data, with paths resolved from the repository root, as the sweep builds it."""
    from recpress_utils.config import stage_params
    from recpress_utils.runs import KDJob
    from recpress_utils.train import TrainConfig

    p = stage_params(config, "09_kd", {"size": size, "method": method, "seed": seed})
    teachers = [{**t, "checkpoint": str(repo_path(t["checkpoint"])),
                 "neighbors_path": str(repo_path(t["neighbors_path"])) if t["neighbors_path"] else ""}
                for t in p["teachers"]]
    missing = [t["checkpoint"] for t in teachers if not Path(t["checkpoint"]).exists()]
    if missing and method != KD_CONTROL and config["kd"]["methods"][method]["method"] != "mutual":
        raise FileNotFoundError(f"kd method {method}: train its teachers first ({' '.join(missing)}), "
                                "or leave it out (--methods)")
    caches = [str(repo_path(c)) if c and repo_path(c).exists() else "" for c in p["teacher_caches"]]
    job = KDJob(None if method == KD_CONTROL else method, p["method_spec"], teachers, p["student_kwargs"],
                p["student_loss"], TrainConfig.from_dict(p["train"]), p["seed"], p["threads"], p["top_k"],
                p["negatives"], caches)
    return job, repo_path(p["prepared_dir"])


class _Timed:
    """One method's student, loss and optimiser, stepped over a fixed list of batches."""

    def __init__(self, job, prepared: Path, train) -> None:
        from recpress_utils.runs import kd_student_and_loss
        from recpress_utils.train import adamw, pick_device, set_determinism

        set_determinism(job.seed, job.threads)
        self.device = pick_device(job.train_cfg.device)
        self.student, self.loss, _ = kd_student_and_loss(prepared, job, train, progress=False)
        self.student.to(self.device).train()
        parameters = list(self.student.parameters())
        if isinstance(self.loss, torch.nn.Module):
            self.loss.to(self.device).train()
            parameters += [p for p in self.loss.parameters() if p.requires_grad]
        self.optimiser = adamw(parameters, job.train_cfg, self.device)

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.optimiser.zero_grad(set_to_none=True)
        self.loss(self.student, inputs.to(self.device), targets.to(self.device)).backward()
        self.optimiser.step()


def time_methods(config: Mapping[str, Any], size: str | None = None, methods: list[str] | None = None,
                 steps: int = 20, rounds: int = 3, seed: int | None = None) -> pd.DataFrame:
    """Seconds per training step of each of ``methods`` (default: every method of ``kd.methods``)
    and of the control at student ``size`` (default the first of ``kd.sizes``), on the same
    ``steps`` batches. One method is loaded at a time (teacher caches are gigabytes at 40k items)
    and its ``rounds`` blocks alternate with blocks of the control, so its ratio to the control
    (medians over the blocks) compares steps timed at the same moment."""
    from recpress_utils.sequences import load_sessions, train_batches
    from recpress_utils.train import budget_windows

    if steps < 1 or rounds < 1:
        raise ValueError(f"steps and rounds must be >= 1, got {steps} and {rounds}")
    size = size or next(iter(config["kd"]["sizes"]))
    unknown = sorted(set(methods or ()) - set(config["kd"]["methods"]) - {KD_CONTROL})
    if unknown:
        raise ValueError(f"not in kd.methods: {unknown}")
    methods = [m for m in (methods or config["kd"]["methods"]) if m != KD_CONTROL]
    jobs = {m: _job(config, m, size, seed) for m in methods}  # every teacher checked before any loading
    job, prepared = _job(config, KD_CONTROL, size, seed)
    train = load_sessions(prepared, "train")
    batches = []
    for batch in train_batches(budget_windows(train, job.train_cfg, job.seed), job.train_cfg.batch_size,
                               torch.Generator().manual_seed(job.seed), job.train_cfg.max_len):
        batches.append(batch)
        if len(batches) == steps + 1:
            break

    def block(timed: _Timed) -> tuple[float, float]:
        """Wall and process CPU seconds per step over the batches after a warm-up step."""
        timed.step(*batches[0])  # warm-up: allocations, lazy initialisation
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        for inputs, targets in batches[1:]:
            timed.step(inputs, targets)
        if timed.device.type == "cuda":
            torch.cuda.synchronize()
        n = len(batches) - 1
        return (time.perf_counter() - wall) / n, (time.process_time() - cpu) / n

    control = _Timed(job, prepared, train)
    clock = 1 if control.device.type == "cpu" else 0  # which of block()'s two clocks the ratio uses

    def medians(blocks: list[tuple[float, float]]) -> tuple[float, float]:
        return statistics.median(b[0] for b in blocks), statistics.median(b[1] for b in blocks)

    control_blocks: list[tuple[float, float]] = []
    rows = []
    for method in tqdm(methods, desc=f"kd step cost ({size})"):
        timed = _Timed(*jobs[method], train)
        own, beside = [], []
        for _ in range(rounds):
            beside.append(block(control))
            own.append(block(timed))
        del timed
        gc.collect()
        control_blocks += beside
        wall, cpu = medians(own)
        rows.append({"method": method, "seconds_per_step": wall, "cpu_seconds_per_step": cpu,
                     "x_control": (wall, cpu)[clock] / medians(beside)[clock]})
    if not methods:
        control_blocks = [block(control) for _ in range(rounds)]
    wall, cpu = medians(control_blocks)
    rows.insert(0, {"method": KD_CONTROL, "seconds_per_step": wall, "cpu_seconds_per_step": cpu,
                    "x_control": 1.0})
    table = pd.DataFrame(rows)
    table.insert(0, "size", size)
    table = table.assign(clock=("wall", "cpu")[clock], steps=len(batches) - 1, rounds=rounds,
                         batch_size=job.train_cfg.batch_size, threads=job.threads)
    return table.round({"seconds_per_step": 5, "cpu_seconds_per_step": 5, "x_control": 2})


def add_rows(path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` added to the CSV at ``path``, replacing the rows of the sizes they time; sorted by
    :data:`KEYS`, written atomically."""
    return replace_rows(path, rows, match=["size"], order=KEYS)


def main(argv: list[str] | None = None) -> None:
    from recpress_utils.config import load_config
    from recpress_utils.report.digest import KD_COST_FILE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configfile", required=True, help="the dataset profile, e.g. config/yoochoose1_64.yaml")
    parser.add_argument("--size", help="a name in kd.sizes (default the first)")
    parser.add_argument("--methods", nargs="+", help="names in kd.methods (default all; the control always)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method and round (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is kept (default 3)")
    parser.add_argument("--out", help="default: reports/<dataset>/kd_cost.csv")
    args = parser.parse_args(argv)
    config = load_config(args.configfile)
    rows = time_methods(config, args.size, args.methods, args.steps, args.rounds)
    out = repo_path(args.out or f"reports/{config['dataset']}/{KD_COST_FILE}")
    add_rows(out, rows)
    print(rows.to_string(index=False))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
