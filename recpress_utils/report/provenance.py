"""What produced a report's numbers: software versions, machine, commit, seeds and the config."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Mapping

import yaml

from recpress_utils.paths import REPO_ROOT, repo_path
from recpress_utils.report.results import load_runs


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def provenance(config: str | Path | Mapping[str, Any], results_dir: str | Path) -> dict[str, Any]:
    """What produced these numbers: software versions, machine, commit, seeds and the config."""
    if isinstance(config, Mapping):
        cfg = dict(config)
    else:
        cfg = yaml.safe_load(repo_path(config).read_text())
    try:
        seeds = sorted(int(s) for s in load_runs(results_dir)["seed"].unique())
    except FileNotFoundError:
        seeds = []
    return {
        "python": platform.python_version(),
        "packages": {p: _version(p) for p in ("torch", "numpy", "pandas", "snakemake", "pecanpy", "papermill")},
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "git_commit": _git_commit(),
        "seeds": seeds,
        "config": cfg,
    }
