"""Distillation experts, DE (Kang et al., CIKM 2020, "DE-RRD"): several small experts each map the
student's representation to the teacher's, and a selection network picks one expert per example
from the teacher's representation, so different regions of the teacher's space are reconstructed
by different experts (a single regressor, :mod:`.hint`, must fit them all at once).

Per position with a target, with student representation ``s`` and teacher representation ``t``
(:func:`~recpress_utils.losses.output_states`):

* expert e: ``E_e(s) = W2 ReLU(W1 s)``, hidden width ``(d_s + d_t) / 2`` (the paper's shape);
* selection: ``alpha = gumbel_softmax(V t, tau)``, one-hot in the forward pass and differentiable
  (straight-through) in the backward pass, as the paper's hard selection; in evaluation mode the
  argmax of ``V t``;
* term: ``|| t - sum_e alpha_e E_e(s) ||^2``, averaged over positions; the student's own loss kept.

The paper anneals ``tau`` from 1 towards 0 over training; a fixed ``tau`` (setting) keeps the run
resumable from any epoch with no schedule state. Experts and selection train with the student
(submodules, so ``fit`` optimises and checkpoints them) and are dropped after training.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller
from recpress_utils.distill.hint import representation_width, squared_distance, teacher_states
from recpress_utils.losses import LossFn, output_states


class DistillationExperts(Distiller):
    """DE: ``n_experts`` student-to-teacher maps, one chosen per example by the teacher's state."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", student_width: int = 64,
                 n_experts: int = 5, tau: float = 1.0) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        if n_experts < 1 or tau <= 0:
            raise ValueError(f"n_experts must be >= 1 and tau > 0, got {n_experts} and {tau}")
        teacher_width = representation_width(self.teacher)
        hidden = (student_width + teacher_width) // 2
        self.experts = nn.ModuleList(
            nn.Sequential(nn.Linear(student_width, hidden), nn.ReLU(), nn.Linear(hidden, teacher_width))
            for _ in range(n_experts))
        self.selection = nn.Linear(teacher_width, n_experts)
        self.tau = float(tau)

    def select(self, teacher_state: Tensor) -> Tensor:
        """One-hot expert choice ``(M, E)``: Gumbel-softmax (straight-through) in training mode,
        the argmax in evaluation mode."""
        logits = self.selection(teacher_state)
        if self.training:
            return F.gumbel_softmax(logits, tau=self.tau, hard=True)
        return F.one_hot(logits.argmax(dim=1), logits.shape[1]).to(logits.dtype)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        states = output_states(student, student.hidden(inputs)[mask])
        target = teacher_states(self.teacher, inputs, mask)
        outputs = torch.stack([expert(states) for expert in self.experts], dim=1)  # (M, E, D_t)
        mixed = (self.select(target)[..., None] * outputs).sum(dim=1)
        return squared_distance(mixed, target)
