"""Published numbers, each from the one YAML file it lives in: the paper's (``paper_numbers.yaml``)
and the peers' public results (``peer_numbers.yaml``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml


@lru_cache(maxsize=1)
def paper_numbers() -> dict[str, Any]:
    """Tables 2-6 of the paper as nested dicts (see the YAML file for the layout)."""
    return yaml.safe_load((Path(__file__).parent / "paper_numbers.yaml").read_text())


@lru_cache(maxsize=1)
def peer_numbers() -> dict[str, list[dict[str, Any]]]:
    """Published full-ranking results of the peers per dataset: model, metrics, source."""
    return yaml.safe_load((Path(__file__).parent / "peer_numbers.yaml").read_text())
