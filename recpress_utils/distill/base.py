"""The one interface of every distillation method: teacher(s), student, batch -> loss.

A method is a :class:`Distiller`: an ``nn.Module`` called like any training loss of
:func:`recpress_utils.train.fit` (``loss(student, inputs, targets)``), so the same loop, early
stopping and checkpoints train every distilled student. Its value is

    ``hard_weight * base_loss(student, batch) + weight * distil(student, batch)``

``base_loss`` is the student's own next-item loss (the no-KD control trains with it alone),
``distil`` the method's term. A method's own parameters (a hint regressor, the experts of DE, a
peer trained online) are submodules: ``fit`` optimises them with the student and saves them in
its checkpoints. Frozen teachers are kept *outside* the module tree, so they are neither optimised,
nor saved with the student, nor ever switched to training mode (no dropout in their targets).

The student's encoder runs once per batch: :meth:`Distiller.forward` computes its hidden states
and hands the base loss and the method a :class:`SharedHidden` view of the student that returns
them, so both terms see the same dropout mask at the cost of one forward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Sequence

import torch
from torch import Tensor, nn

from recpress_utils.losses import LossFn
from recpress_utils.sequences import PAD

if TYPE_CHECKING:
    from recpress_utils.distill.teacher_cache import TeacherCache


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode and no gradients for every parameter; returns ``model``."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def follow_device(model: nn.Module, device: torch.device) -> None:
    """Move ``model`` to ``device`` if it lives elsewhere (``fit`` moves only the student)."""
    tensor = next(model.parameters(), None)
    if tensor is not None and tensor.device != device:
        model.to(device)


def logits_at(model: nn.Module, inputs: Tensor, mask: Tensor) -> Tensor:
    """Next-item logits ``(M, n_items)`` at the positions ``mask`` ``(B, L)`` selects.

    A causal model gives them all from one pass (``head(hidden)``); a bidirectional one (BERT4Rec)
    would see later items at every position, so each selected prefix is asked on its own
    (``last_logits`` of the prefix): correct, and ``L`` times the cost.
    """
    if getattr(model, "causal", True):
        return model.head(model.hidden(inputs)[mask])
    rows = [model.last_logits(inputs[:, :t + 1][mask[:, t]]) for t in range(inputs.shape[1])
            if mask[:, t].any()]
    # the rows above are ordered by position, then batch row; reorder to mask's (row, position)
    positions = torch.nonzero(mask.T)  # (M, 2): position, row, position-major
    order = torch.argsort(positions[:, 1] * mask.shape[1] + positions[:, 0])
    return torch.cat(rows)[order]


class SharedHidden:
    """The student as the loss terms see it during one batch: ``hidden(inputs)`` returns the
    states computed once for that batch; everything else is the student's own."""

    def __init__(self, student: nn.Module, inputs: Tensor, hidden: Tensor) -> None:
        self._student, self._inputs, self._hidden = student, inputs, hidden

    def hidden(self, items: Tensor) -> Tensor:
        return self._hidden if items is self._inputs else self._student.hidden(items)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._student, name)


class Distiller(nn.Module):
    """Base of every method; subclasses write :meth:`distil` (and may override the defaults).

    ``teachers``: trained models, frozen here (a method that trains its teacher alongside, like deep
    mutual learning, registers it as a submodule instead and passes none here). ``base_loss``:
    the student's own loss. ``hard_weight`` defaults to the method's :attr:`default_hard_weight`
    (0 for soft labels alone, as in the paper; 1 for the methods that add a term to the student's
    usual training).
    """

    #: weight of the student's own loss when the config gives none
    default_hard_weight: ClassVar[float] = 1.0
    #: how many frozen teachers the method takes (None: one or more)
    n_teachers: ClassVar[int | None] = 1

    def __init__(self, teachers: Sequence[nn.Module], base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all") -> None:
        super().__init__()
        if self.n_teachers is not None and len(teachers) != self.n_teachers:
            raise ValueError(f"{type(self).__name__} takes {self.n_teachers} teacher(s), got {len(teachers)}")
        hard_weight = self.default_hard_weight if hard_weight is None else hard_weight
        if hard_weight < 0 or weight < 0:
            raise ValueError(f"hard_weight and weight must be >= 0, got {hard_weight} and {weight}")
        self._teachers = tuple(freeze(t) for t in teachers)  # a tuple: outside the module tree
        self.base_loss = base_loss
        self.hard_weight = float(hard_weight)
        self.weight = float(weight)
        if positions not in ("all", "last"):
            raise ValueError(f"positions must be 'all' or 'last', not {positions!r}")
        self.positions = positions

    @property
    def teachers(self) -> tuple[nn.Module, ...]:
        return self._teachers

    @property
    def teacher(self) -> nn.Module:
        return self._teachers[0]

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        """The method's term for one batch (``targets`` 0 = no target); ``student.hidden(inputs)``
        is free (computed once per batch)."""
        raise NotImplementedError

    def forward(self, student: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        for teacher in self._teachers:
            teacher.eval()
            follow_device(teacher, inputs.device)
        shared = SharedHidden(student, inputs, student.hidden(inputs))
        value = self.weight * self.distil(shared, inputs, targets)
        if self.hard_weight:
            value = value + self.hard_weight * self.base_loss(shared, inputs, targets)
        return value

    def target_mask(self, targets: Tensor) -> Tensor:
        """Positions that have a target (only each row's last with ``positions="last"``, the
        training config's ``loss_positions``): where every method distils."""
        mask = targets != PAD
        if self.positions == "last":
            last, mask = mask[:, -1], torch.zeros_like(mask)
            mask[:, -1] = last
        return mask

    def extra_repr(self) -> str:
        return f"weight={self.weight:g}, hard_weight={self.hard_weight:g}, teachers={len(self._teachers)}"


@torch.no_grad()
def teacher_top_items(teacher: nn.Module, inputs: Tensor, mask: Tensor, k: int,
                      cache: "TeacherCache | None" = None) -> Tensor:
    """The teacher's ``k`` best items ``(M, k)``, best first, at the positions ``mask`` selects:
    from its cached top-K when the run built one (``cache.top_k >= k``), else from its logits."""
    if cache is not None:
        if cache.top_k < k:
            raise ValueError(f"the teacher cache keeps {cache.top_k} items per prefix, the method needs {k}")
        from recpress_utils.distill.teacher_cache import prefix_keys  # it imports logits_at from here

        items, _, _ = cache.lookup(prefix_keys(inputs)[mask.cpu().numpy()])
        return items[:, :k].to(inputs.device)
    return logits_at(teacher, inputs, mask).topk(k, dim=1).indices  # column 0 is -inf: never picked
