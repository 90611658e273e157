"""Relational knowledge distillation (Park et al., CVPR 2019), on items: the similarity structure
of the teacher's item embeddings transferred to the student's.

Not the vectors themselves (their widths may differ) but their relations: for a set of items, the
cosine similarity of every pair in the teacher's embedding space is the target of the same pair
in the student's, ``mean_{i,j} (cos_S(i, j) - cos_T(i, j))^2``. The items are the batch's distinct
targets (the items being learned at this step), at most ``n_items`` of them, drawn by the method's
seeded generator when there are more; the student's own loss is kept.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller
from recpress_utils.losses import LossFn


def cosine_matrix(vectors: Tensor) -> Tensor:
    """Cosine similarity of every pair of rows ``(N, D)`` -> ``(N, N)``."""
    unit = F.normalize(vectors, dim=1)
    return unit @ unit.T


def relational_loss(student_vectors: Tensor, teacher_vectors: Tensor) -> Tensor:
    """``mean (cos_S - cos_T)^2`` over every pair of the same items in the two spaces."""
    return (cosine_matrix(student_vectors) - cosine_matrix(teacher_vectors)).pow(2).mean()


class RelationalKD(Distiller):
    """Item-item cosine structure of the teacher's item embeddings, over the batch's targets."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", n_items: int = 256,
                 seed: int = 0) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if n_items < 2:
            raise ValueError(f"n_items must be >= 2 (pairs of items), got {n_items}")
        self.n_items = int(n_items)
        self.generator = torch.Generator().manual_seed(seed)  # saved in checkpoints (exact resume)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        items = torch.unique(targets[self.target_mask(targets)])
        if len(items) > self.n_items:
            items = items[torch.randperm(len(items), generator=self.generator)[:self.n_items].to(items.device)]
        if len(items) < 2:
            return student.item_emb.weight.sum() * 0.0
        with torch.no_grad():
            teacher_vectors = self.teacher.item_emb.weight[items]
        return relational_loss(student.item_emb.weight[items], teacher_vectors)
