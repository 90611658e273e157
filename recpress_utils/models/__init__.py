"""Next-item models by name: one small module per model over :class:`SequentialRecommender`.

Adding a model means one file and one entry in :data:`MODELS`; configs and the workflow refer
to models only by these names.
"""

from __future__ import annotations

import inspect
from typing import Any

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.baseline import LSTMBaseline
from recpress_utils.models.bert4rec import BERT4Rec
from recpress_utils.models.gru4rec import GRU4Rec
from recpress_utils.models.mixed_attention import MixedAttention
from recpress_utils.models.popularity import Popularity
from recpress_utils.models.sasrec import SASRec
from recpress_utils.models.session_knn import STAN, VSKNN
from recpress_utils.models.student import Student

MODELS: dict[str, type[SequentialRecommender]] = {
    "baseline": LSTMBaseline,
    "bert4rec": BERT4Rec,
    "gru4rec": GRU4Rec,
    "mixed_attention": MixedAttention,
    "popularity": Popularity,
    "sasrec": SASRec,
    "stan": STAN,
    "student": Student,
    "vsknn": VSKNN,
}


def build_model(name: str, n_items: int, **kwargs: Any) -> SequentialRecommender:
    """Instantiate model ``name`` over ``n_items`` (incl. padding), failing early on typos."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    cls = MODELS[name]
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "n_items")]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown setting(s) for model {name!r}: {', '.join(unknown)}; "
            f"accepted: {', '.join(accepted)}"
        )
    return cls(n_items, **kwargs)


__all__ = ["MODELS", "LSTMBaseline", "MixedAttention", "SequentialRecommender", "build_model"]


def uses_kg(name: str) -> bool:
    """Whether the model reads knowledge-graph neighbour tables."""
    return hasattr(MODELS[name], "set_neighbor_tables")
