"""Does a fresh run regenerate the committed report's numbers? Within a stated tolerance.

`make test` runs the default pipeline (reusing what `make run` computed) with
``--omit-from publish_report``, which leaves its digest in ``results/synthetic/digest/`` and the
committed one in ``reports/synthetic/`` untouched. nbval then re-executes the committed report
against the committed digest (exact), and this module compares the two digests: the same runs, and
every model's mean over seeds of every test metric within ``TOLERANCE`` (absolute), since another
CPU, BLAS or thread count changes the last bits of a reduction and, over epochs of training, a
single run's last printed digits (see ``recpress_utils.report.digest.compare_digests``).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from recpress_utils.report.digest import TOLERANCE, compare_digests
from recpress_utils.paths import REPO_ROOT

#: The fresh run's digest: the default pipeline's, or another run's given by RECPRESS_FRESH_DIGEST
#: (e.g. the default profile run with `--config threads=2 results_dir=results/threads2`).
FRESH = Path(os.environ.get("RECPRESS_FRESH_DIGEST", REPO_ROOT / "results" / "synthetic" / "digest"))
COMMITTED = REPO_ROOT / "reports" / "synthetic"


def test_a_fresh_run_regenerates_the_committed_digest():
    if not (FRESH / "digest.csv").exists():
        if os.environ.get("CI"):
            pytest.fail(f"{FRESH} is missing: CI runs the default pipeline before the tests (make test)")
        pytest.skip("run the default pipeline first (make test does)")
    problems = compare_digests(FRESH, COMMITTED)
    assert not problems, "\n".join(problems[:40])


def _shifted_copy(tmp_path, column: str, delta: float):
    copy = tmp_path / f"shift{delta}"
    shutil.copytree(COMMITTED, copy)
    table = pd.read_csv(copy / "digest.csv")
    table.loc[0, column] += delta
    table.to_csv(copy / "digest.csv", index=False)
    return copy, f"{table.loc[0, 'model']}_s{table.loc[0, 'seed']}"


@pytest.mark.parametrize("column", ["NDCG@10", "rest:MAP@10", "MRR"])
def test_a_wrong_metric_fails_and_noise_passes(tmp_path, column):
    wrong, run = _shifted_copy(tmp_path, column, 0.06)  # one run of three: its model's mean moves 0.02
    problems = compare_digests(wrong, COMMITTED)
    assert len(problems) == 1 and run.rsplit("_s", 1)[0] in problems[0] and column in problems[0]
    noise, _ = _shifted_copy(tmp_path, column, TOLERANCE / 2)
    assert compare_digests(noise, COMMITTED) == []


def test_a_missing_run_fails(tmp_path):
    copy = tmp_path / "missing"
    shutil.copytree(COMMITTED, copy)
    table = pd.read_csv(copy / "digest.csv")
    table.iloc[1:].to_csv(copy / "digest.csv", index=False)
    problems = compare_digests(copy, COMMITTED)
    assert any("missing from the fresh digest" in p for p in problems)


def test_a_smaller_profile_is_compared_on_the_runs_it_has(tmp_path):
    """``subset=True`` (the SLURM test's smaller tiny profile): committed runs the fresh digest
    lacks are no problem, but a run it has must still match, relatedness included."""
    copy = tmp_path / "subset"
    shutil.copytree(COMMITTED, copy)
    table = pd.read_csv(copy / "digest.csv")
    kept = table["model"] == table.loc[0, "model"]
    related = json.loads((copy / "relatedness.json").read_text())
    related["runs"] = {r: v for r, v in related["runs"].items() if r.rsplit("_s", 1)[0] == table.loc[0, "model"]}
    (copy / "relatedness.json").write_text(json.dumps(related))
    table[kept].to_csv(copy / "digest.csv", index=False)
    assert 0 < kept.sum() < len(table)
    assert any("missing from the fresh digest" in p for p in compare_digests(copy, COMMITTED))
    assert compare_digests(copy, COMMITTED, subset=True) == []
    table.loc[0, "MRR"] += 0.06
    table[kept].to_csv(copy / "digest.csv", index=False)
    problems = compare_digests(copy, COMMITTED, subset=True)
    assert len(problems) == 1 and "MRR" in problems[0]


def _shifted_relatedness(tmp_path, delta: float):
    copy = tmp_path / f"related{delta}"
    shutil.copytree(COMMITTED, copy)
    related = json.loads((copy / "relatedness.json").read_text())
    run = next(iter(related["runs"]))
    related["runs"][run]["kg_neighbour_share"] += delta
    (copy / "relatedness.json").write_text(json.dumps(related))
    return copy, run


def test_relatedness_is_compared_by_seed_means_a_wrong_share_fails(tmp_path):
    """One run's share +0.06 (one of three seeds): its model's mean moves 0.02 > 0.015 and fails;
    +0.007 in one run (what another thread count did) moves the mean 0.0023 and passes."""
    wrong, run = _shifted_relatedness(tmp_path, 0.06)
    problems = compare_digests(wrong, COMMITTED)
    assert len(problems) == 1 and run.rsplit("_s", 1)[0] in problems[0] and "kg_neighbour_share" in problems[0]
    noise, _ = _shifted_relatedness(tmp_path, 0.007)
    assert compare_digests(noise, COMMITTED) == []
