"""Multi-teacher soft labels: the student learns the weighted average of several teachers'
softened next-item distributions (for example Mixed Attention, SASRec and GRU4Rec together).

``p = sum_t w_t softmax(z_t / T)`` (weights normalised to sum 1; equal by default) replaces the one
teacher's distribution of :mod:`.soft_labels`: the term is ``T^2 * KL(p || softmax(v / T))`` over
the catalogue (padding left out), at every position with a target. The teachers run on the fly
(no top-K cache: their averaged distribution is not any one teacher's top-K).
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, logits_at
from recpress_utils.losses import LossFn


def mixture_kd_loss(student_logits: Tensor, teacher_logits: Sequence[Tensor], weights: Tensor,
                    temperature: float) -> Tensor:
    """``T^2 * KL(sum_t w_t softmax(z_t / T) || softmax(v / T))`` averaged over rows; logits
    ``(M, n_items)`` with column 0 the padding item, which is left out."""
    if student_logits.shape[0] == 0:
        return student_logits.sum()
    log_q = F.log_softmax(student_logits[:, 1:] / temperature, dim=-1)
    p = sum(w * F.softmax(z[:, 1:].to(log_q.dtype) / temperature, dim=-1) for w, z in zip(weights, teacher_logits))
    kl = (p * (p.clamp_min(torch.finfo(p.dtype).tiny).log() - log_q)).sum(dim=1).mean()
    return temperature ** 2 * kl


class MultiTeacher(Distiller):
    """Soft labels from the ``weights``-averaged distributions of two or more teachers."""

    default_hard_weight = 0.0  # soft labels alone, as the one-teacher method
    n_teachers = None

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", temperature: float = 1.0,
                 weights: Sequence[float] | None = None) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if len(teachers) < 2:
            raise ValueError(f"multi-teacher distillation needs two or more teachers, got {len(teachers)}")
        weights = torch.ones(len(teachers)) if weights is None else torch.tensor(weights, dtype=torch.float32)
        if len(weights) != len(teachers) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError(f"weights must be {len(teachers)} numbers >= 0 with a positive sum, got {weights.tolist()}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.register_buffer("teacher_weights", weights / weights.sum(), persistent=False)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        with torch.no_grad():
            teacher_logits = [logits_at(teacher, inputs, mask) for teacher in self.teachers]
        return mixture_kd_loss(student.head(student.hidden(inputs)[mask]), teacher_logits,
                               self.teacher_weights, self.temperature)
