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


#: Each part of a digest that an update can leave behind, as :func:`stale_note` says it.
_STALE_PARTS = {"kd": "the toolkit runs {items} learnt from the earlier runs of {groups}",
                "relatedness": "the relatedness check (C6) scored the earlier runs of {groups} ({items})"}


def stale_note(record: Mapping[str, Any], part: str) -> str | None:
    """The page's warning where a digest update (:func:`recpress_utils.report.digest.update_digest`)
    retrained models after ``part`` (``kd``, ``relatedness``) was computed from their earlier
    weights, which it keeps: which numbers, and which models' earlier runs they describe. None
    when no update left ``part`` behind, or a later update made it again (its ``refreshed``); an
    item a later update left behind in turn is named once, in that update's note.
    ``record`` is the digest's ``provenance.json``."""
    updates, notes = record.get("updates", []), []
    for i, update in enumerate(updates):
        # what a later update made again, or left behind in turn (then its note names it)
        later = {item for after in updates[i + 1:] for key in ("refreshed", "stale")
                 for item in after.get(key, {}).get(part, [])}
        if items := [item for item in update.get("stale", {}).get(part, []) if item not in later]:
            models = ", ".join(g for g in update["groups"] if "/" not in g)  # not its toolkit groups (e16/multi)
            notes.append(_STALE_PARTS[part].format(items=", ".join(items), groups=models))
    return ("Not rerun: " + "; ".join(notes) + ", retrained since in a digest update whose runs the "
            "leaderboard shows.") if notes else None
