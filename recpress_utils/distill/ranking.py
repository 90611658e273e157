"""Ranking distillation, RD (Tang & Wang, KDD 2018): the teacher's top-K items as extra, weighted
positives of the student.

For a prefix whose teacher ranks items ``pi_1, ..., pi_K`` first, the student's term is

    ``L_RD = - sum_r w_r log sigmoid(s_{pi_r})``,  ``w_r = exp(-r / decay) / sum_r' exp(-r' / decay)``

averaged over the positions with a target: the teacher's best items are pushed up, the higher
ranked the harder (the paper's position importance; its dynamic "ranking discrepancy" weight,
which reweights by the student's own current rank, is left out). The student's usual loss on the
true next item is kept (``hard_weight`` 1), as in the paper (``L = L_CE + weight * L_RD``). Only
the K items' scores are computed (:func:`~recpress_utils.losses.scores_for`), so the term costs
K dot products per position at any catalogue size; with a teacher cache the teacher is not run.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, teacher_top_items
from recpress_utils.distill.teacher_cache import TeacherCache
from recpress_utils.losses import LossFn, output_states, scores_for


def rank_weights(k: int, decay: float) -> Tensor:
    """``w_r = exp(-r / decay)`` for ranks ``r = 1..k``, normalised to sum 1."""
    if k < 1 or decay <= 0:
        raise ValueError(f"top_k must be >= 1 and decay > 0, got {k} and {decay}")
    weights = torch.exp(-torch.arange(1, k + 1, dtype=torch.float32) / decay)
    return weights / weights.sum()


def ranking_distillation_loss(top_scores: Tensor, weights: Tensor) -> Tensor:
    """``-sum_r w_r log sigmoid(s_r)`` per row of the student's scores ``(M, K)`` of the teacher's
    top-K (best first), averaged over rows."""
    if top_scores.shape[0] == 0:
        return top_scores.sum()
    return -(F.logsigmoid(top_scores) * weights.to(top_scores)).sum(dim=1).mean()


class RankingDistillation(Distiller):
    """RD: the teacher's ``top_k`` items, weighted by rank (``decay``), as extra positives."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", top_k: int = 10,
                 decay: float = 5.0, cache: TeacherCache | None = None) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        self.top_k = int(top_k)
        self.register_buffer("rank_weights", rank_weights(self.top_k, decay), persistent=False)
        self.cache = cache

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        items = teacher_top_items(self.teacher, inputs, mask, self.top_k, self.cache)
        states = output_states(student, student.hidden(inputs)[mask])
        return ranking_distillation_loss(scores_for(student, states, items), self.rank_weights)
