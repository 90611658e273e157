"""Relaxed ranking distillation, RRD (Kang et al., CIKM 2020, "DE-RRD"): a listwise loss on the
teacher's ranking of a few sampled items.

Per prefix the teacher's top-K items, in its order, are the *interesting* items ``pi_1..pi_K``;
``n_uninteresting`` items drawn uniformly from the rest are *uninteresting*. The student maximises
the likelihood of the teacher's order among the interesting items, each ranked above every
uninteresting one, whose own order is left free (the relaxation):

    ``L_RRD = - sum_{k=1..K} [ s_{pi_k} - log( sum_{l=k..K} exp(s_{pi_l}) + sum_{j in U} exp(s_j) ) ]``

averaged over the positions with a target (the paper draws the interesting items from the
teacher's top-N by rank; taking its top-K exactly is the special case N = K). One uniform pool
``U`` per batch is shared by all positions (one ``(M, |U|)`` product); pooled items that are in a
row's top-K are removed from that row. The student's own loss is kept (``hard_weight`` 1).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, teacher_top_items
from recpress_utils.distill.teacher_cache import TeacherCache
from recpress_utils.losses import LossFn, output_states, scores_for


def relaxed_ranking_loss(top_scores: Tensor, other_scores: Tensor) -> Tensor:
    """``L_RRD`` of the student's scores of the interesting items ``(M, K)`` (the teacher's order,
    best first) and of the uninteresting ones ``(M, U)`` (a very low score where a pooled item is in the row's
    top-K), row mean."""
    if top_scores.shape[0] == 0:
        return top_scores.sum()
    # log-sum-exp of s_{pi_k..pi_K}: a reversed cumulative logsumexp over the interesting items
    tail = torch.logcumsumexp(top_scores.flip(1), dim=1).flip(1)
    below = torch.logsumexp(other_scores, dim=1, keepdim=True)
    return -(top_scores - torch.logaddexp(tail, below)).sum(dim=1).mean()


class RelaxedRankingDistillation(Distiller):
    """RRD: the teacher's ``top_k`` in order above ``n_uninteresting`` uniform items."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", top_k: int = 10,
                 n_uninteresting: int = 100, seed: int = 0, cache: TeacherCache | None = None) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if top_k < 1 or n_uninteresting < 1:
            raise ValueError(f"top_k and n_uninteresting must be >= 1, got {top_k} and {n_uninteresting}")
        self.top_k, self.n_uninteresting = int(top_k), int(n_uninteresting)
        self.cache = cache
        self.generator = torch.Generator().manual_seed(seed)  # saved in checkpoints (exact resume)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        items = teacher_top_items(self.teacher, inputs, mask, self.top_k, self.cache)
        pool = torch.randint(1, student.n_items, (self.n_uninteresting,), generator=self.generator).to(inputs.device)
        states = output_states(student, student.hidden(inputs)[mask])
        other = scores_for(student, states, pool)
        other.masked_fill_((pool[None, None, :] == items[:, :, None]).any(dim=1), torch.finfo(other.dtype).min)
        return relaxed_ranking_loss(scores_for(student, states, items), other)
