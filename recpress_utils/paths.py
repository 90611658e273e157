"""Repository-relative paths, so notebooks work from any working directory (nbval, papermill)."""

from __future__ import annotations

from pathlib import Path

#: The repository root: the folder holding ``Snakefile``.
REPO_ROOT: Path = Path(__file__).resolve().parent.parent


def repo_path(*parts: str | Path) -> Path:
    """Resolve ``parts`` against the repository root unless already absolute."""
    p = Path(*parts)
    return p if p.is_absolute() else REPO_ROOT / p
