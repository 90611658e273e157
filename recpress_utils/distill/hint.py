"""Hint learning (FitNets, Romero et al. 2015), the plain feature-based baseline: a linear
regressor maps the student's representation to the teacher's, and the squared distance between
them is added to the student's own loss.

The representation of a model is what meets its item output vectors
(:func:`~recpress_utils.losses.output_states`: the student's bottleneck, the teacher's MLP layer,
SASRec's final state), taken at every position with a target; widths may differ (the regressor is
``Linear(student width, teacher width)``). The regressor is trained with the student (a submodule
of the method, so ``fit`` optimises and checkpoints it) and dropped after training.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from recpress_utils.distill.base import Distiller
from recpress_utils.losses import LossFn, output_states


def representation_width(model: nn.Module) -> int:
    """Width of ``output_states`` (the item output vectors' dimension)."""
    if not hasattr(model, "item_output"):
        raise TypeError(f"{type(model).__name__} exposes no item output vectors, so no representation to match")
    return model.item_output()[0].shape[1]


@torch.no_grad()
def teacher_states(teacher: nn.Module, inputs: Tensor, mask: Tensor) -> Tensor:
    """The teacher's representation ``(M, D_t)`` at the positions ``mask`` selects."""
    if not getattr(teacher, "causal", True):
        raise ValueError(f"a bidirectional teacher ({type(teacher).__name__}) has no per-prefix "
                         "representation from one pass; use a causal teacher for feature-based methods")
    return output_states(teacher, teacher.hidden(inputs)[mask])


def squared_distance(predicted: Tensor, target: Tensor) -> Tensor:
    """``||predicted - target||^2`` per row, averaged over rows (0 for none)."""
    if predicted.shape[0] == 0:
        return predicted.sum()
    return (predicted - target).pow(2).sum(dim=1).mean()


class Hint(Distiller):
    """FitNets hint: ``||W s + b - t||^2`` between the student's and the teacher's representation."""

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", student_width: int = 64) -> None:
        super().__init__(teachers, base_loss, hard_weight, weight, positions)
        self.regressor = nn.Linear(student_width, representation_width(self.teacher))

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        mask = self.target_mask(targets)
        states = output_states(student, student.hidden(inputs)[mask])
        return squared_distance(self.regressor(states), teacher_states(self.teacher, inputs, mask))
