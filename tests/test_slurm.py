"""The cluster profile for real (workflow/profiles/slurm): part of the tiny profile submitted through
snakemake-executor-plugin-slurm to a single-node SLURM, every job but the local ones a SLURM job,
with the local tiny run's results.

CI starts the cluster (.ci/run: `.ci/slurm install`, `.ci/slurm start`, RECPRESS_SLURM=1, and
`.ci/slurm stop` at the end); elsewhere the test is skipped unless a SLURM is up and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from recpress_utils.paths import REPO_ROOT
from recpress_utils.report.digest import compare_digests
from tests.conftest import TINY_SUBSET, tiny_subset

SLURM_UP = os.environ.get("RECPRESS_SLURM") == "1" and shutil.which("sbatch") is not None


def local_rules() -> set[str]:
    """The Snakefile's localrules: jobs Snakemake runs itself, never submitted."""
    text = (REPO_ROOT / "Snakefile").read_text()
    block = text.split("localrules:", 1)[1].split("\n\n", 1)[0]
    return {name.strip(" ,") for name in block.split() if name.strip(" ,")}


@pytest.mark.pipeline
@pytest.mark.skipif(not SLURM_UP, reason="needs a running SLURM (.ci/slurm install && .ci/slurm start; RECPRESS_SLURM=1)")
def test_the_tiny_profile_runs_as_slurm_jobs_with_the_local_results(tiny_run, tmp_path):
    """Part of the tiny profile (conftest's TINY_SUBSET: every kind of job, not every peer and
    method again) on SLURM, compared run by run with the same runs of the local tiny run."""
    results, logs = tmp_path / "results", tmp_path / "slurm_logs"
    profile = tiny_subset(tmp_path / "tiny_subset.yaml", **TINY_SUBSET)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm",
         "--configfile", str(profile), "--config", f"results_dir={results}", "--jobs", "2",
         "--slurm-logdir", str(logs), "--slurm-keep-successful-logs", "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "2", "--seconds-between-status-checks", "2"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=3600,
        env={**os.environ, "SBATCH_PARTITION": "recpress"})  # the partition .ci/slurm defines, as a user names theirs
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", out)
    remote = [rule for rule in finished if rule not in local_rules()]
    assert "all" in local_rules() and "train_model" in remote and "kd" in remote
    assert len(submitted) == len(set(submitted)) == len(remote), "one SLURM job per non-local job"
    assert {p.stem for p in logs.rglob("*.log")} == set(submitted), "each with its SLURM log, named by job id"
    problems = compare_digests(results / "synthetic" / "digest", tiny_run / "digest", subset=True)
    assert not problems, "\n".join(problems[:20])


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="the SLURM executor plugin needs SLURM's client tools")
def test_the_slurm_profile_sizes_jobs_from_the_config(tmp_path):
    gpu = tmp_path / "gpu.yaml"
    gpu.write_text("resources:\n  train: {mem_mb: 9999, gpu: 1}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--workflow-profile", "workflow/profiles/slurm", "--configfile",
         "config/tiny.yaml", str(gpu), "-n", "--nolock", "--forceall"],
        cwd=REPO_ROOT, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    train_jobs = [block for block in out.split("\n\n") if "rule train_model:" in block or "localrule train_model:" in block]
    assert train_jobs and all("mem_mb=9999" in b and "runtime=720" in b and "gpu=1" in b for b in train_jobs)
