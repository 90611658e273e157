"""The pipeline's teacher_cache job: a trained teacher's top-K per training prefix, built once
for every temperature its students distil at (:func:`recpress_utils.runs.teacher_cache_run`) and
written where the distill and kd jobs of that teacher read it."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence

from recpress_utils.runs import teacher_cache_run
from recpress_utils.train import TrainConfig


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m recpress_utils.distill.cache_job --job '<json>' --threads N``: the pipeline's
    teacher_cache rule (distill.smk). The job holds the arguments of
    :func:`recpress_utils.runs.teacher_cache_run`: ``prepared_dir``, ``out``, ``teacher``
    (``model``, ``model_kwargs``, ``checkpoint``, ``neighbors_path``), ``train`` (the student's
    training settings), ``seed``, ``top_k`` and ``temperatures``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--job", required=True, help="the run's settings, JSON")
    parser.add_argument("--threads", type=int, required=True, help="the job's threads")
    args = parser.parse_args(argv)
    job = json.loads(args.job)
    started = time.perf_counter()
    info = teacher_cache_run(job["prepared_dir"], job["out"], job["teacher"], TrainConfig.from_dict(job["train"]),
                             int(job["seed"]), args.threads, int(job["top_k"]),
                             [float(t) for t in job["temperatures"]], progress=False)
    print(f"teacher cache: {info['prefixes']:,} prefixes x top {info['top_k']} at T in {info['temperatures']},"
          f" {time.perf_counter() - started:.1f} s -> {job['out']}")


if __name__ == "__main__":
    main()
