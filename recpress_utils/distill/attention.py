"""Attention distillation: the student's self-attention maps matched to the teacher's (both are
attention models: the paper's student and Mixed Attention's session attention, or SASRec's last
block).

Each model gives ``attention_maps(items) -> (B, L, L)``, its attention weights averaged over
heads: row t is query position t's distribution over the session's positions (causal and
padding-masked, identically in both models, since they read the same batch). The term is the
KL divergence from the teacher's row to the student's, ``sum_j a^T_tj (log a^T_tj - log a^S_tj)``,
averaged over the positions with a target, added to the student's own loss: where in the session
the teacher looks is what the student is told, not what it predicts.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller
from recpress_utils.losses import LossFn


def attention_kl(student_rows: Tensor, teacher_rows: Tensor) -> Tensor:
    """``KL(teacher || student)`` per row of attention weights ``(M, L)``, averaged over rows; a
    key the teacher gives no weight adds nothing."""
    if student_rows.shape[0] == 0:
        return student_rows.sum()
    tiny = torch.finfo(student_rows.dtype).tiny
    terms = teacher_rows * (teacher_rows.clamp_min(tiny).log() - student_rows.clamp_min(tiny).log())
    return terms.sum(dim=1).mean()


class AttentionTransfer(Distiller):
    """The student's head-averaged attention rows towards the teacher's, at every target position."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all") -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if not hasattr(self.teacher, "attention_maps"):
            raise TypeError(f"the teacher ({type(self.teacher).__name__}) has no attention maps to distil")

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        if not hasattr(student, "attention_maps"):
            raise TypeError(f"the student ({type(student).__name__}) has no attention maps to match")
        mask = self.target_mask(targets)
        with torch.no_grad():
            teacher_rows = self.teacher.attention_maps(inputs)[mask]
        return attention_kl(student.attention_maps(inputs)[mask], teacher_rows)
