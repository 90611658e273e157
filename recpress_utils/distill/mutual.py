"""Online distillation by deep mutual learning, DML (Zhang et al., CVPR 2018): no trained teacher;
a peer (the teacher's architecture, from scratch) and the student train together, each on the true
next item and each towards the other's softened distribution.

Per batch, with student logits ``v`` and peer logits ``z`` at the positions with a target:

    ``loss = CE(v) + CE(z) + T^2 KL(softmax(z/T) || softmax(v/T)) + T^2 KL(softmax(v/T) || softmax(z/T))``

where each KL term moves only the model it is written for (the other side is detached), so one
backward pass gives each model its DML gradient and one optimiser steps both. The student's CE is
its own loss (``base_loss``, ``hard_weight`` 1); the peer's is ``peer_loss`` (its own training loss),
added unweighted; ``weight`` scales the two KL terms.
The peer is a submodule: ``fit`` optimises it and saves it in checkpoints; only the student is
evaluated and kept.
"""

from __future__ import annotations

from typing import Any, Literal

from torch import Tensor, nn

from recpress_utils.distill.base import Distiller, SharedHidden
from recpress_utils.distill.soft_labels import kd_loss
from recpress_utils.losses import LossFn


class MutualLearning(Distiller):
    """DML with one ``peer`` trained alongside the student (``T^2``-scaled KL both ways)."""

    n_teachers = 0

    def __init__(self, peer: nn.Module, peer_loss: LossFn, base_loss: LossFn, hard_weight: float | None = None,
                 weight: float = 1.0, positions: Literal["all", "last"] = "all", temperature: float = 1.0) -> None:
        super().__init__((), base_loss, hard_weight, weight, positions)
        if not getattr(peer, "causal", True):
            raise ValueError(f"a bidirectional peer ({type(peer).__name__}) has no next-item logits at every "
                             "position from one pass; use a causal architecture")
        self.peer = peer
        self.peer_loss = peer_loss
        self.temperature = float(temperature)

    def distil(self, student: Any, inputs: Tensor, targets: Tensor) -> Tensor:
        """The two KL terms; the peer's own loss is added unweighted by :meth:`forward`."""
        mask = self.target_mask(targets)
        peer_hidden = self.peer.hidden(inputs)
        v = student.head(student.hidden(inputs)[mask])
        z = self.peer.head(peer_hidden[mask])
        self._peer_term = self.peer_loss(SharedHidden(self.peer, inputs, peer_hidden), inputs, targets)
        return kd_loss(v, z.detach(), self.temperature) + kd_loss(z, v.detach(), self.temperature)

    def forward(self, student: nn.Module, inputs: Tensor, targets: Tensor) -> Tensor:
        value = super().forward(student, inputs, targets)
        return value + self._peer_term
