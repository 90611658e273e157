"""The paper's published numbers, loaded from ``paper_numbers.yaml`` (the one place they live)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


@lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """Tables 2-6 of the paper as nested dicts (see the YAML file for the layout)."""
    return yaml.safe_load((Path(__file__).parent / "paper_numbers.yaml").read_text())
