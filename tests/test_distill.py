"""Distillation loss (paper eqs. 6-7): T^2-scaled KL, its gradient, padding, the LossFn wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recpress_utils.distill import distillation_loss, freeze, kd_loss
from recpress_utils.models.mixed_attention import MixedAttention
from recpress_utils.models.student import Student
from recpress_utils.sequences import left_pad

N_ITEMS = 31
TEMPERATURES = (0.5, 1.0, 2.0, 5.0)


def logits(seed: int, rows: int = 5, n_items: int = 9, scale: float = 3.0) -> torch.Tensor:
    """Random float64 logits with the padding column 0 at -inf, as the models produce them."""
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(rows, n_items, generator=g, dtype=torch.float64) * scale
    out[:, 0] = float("-inf")
    return out


def models(seed: int = 0) -> tuple[Student, MixedAttention]:
    torch.manual_seed(seed)
    student = Student(N_ITEMS, emb_dim=16, qkv_dim=16, n_filters=8, max_len=12, proj_dim=16)
    teacher = MixedAttention(N_ITEMS, n_projections=0, emb_dim=16, qkv_dim=16, max_len=12,
                             mlp_hidden=16)
    return student.eval(), teacher


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded next-item inputs and targets (0 = no target) of different lengths."""
    rng = np.random.default_rng(seed)
    rows = [rng.integers(1, N_ITEMS, size=n) for n in (7, 4, 2, 6)]
    return left_pad([s[:-1] for s in rows]), left_pad([s[1:] for s in rows])


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_zero_iff_the_distributions_agree(temperature: float) -> None:
    z = logits(0)
    assert kd_loss(z.clone(), z, temperature).item() == pytest.approx(0.0, abs=1e-12)
    # A constant shift per row does not change a softmax either.
    assert kd_loss(z + 4.0, z, temperature).item() == pytest.approx(0.0, abs=1e-12)
    assert kd_loss(logits(1), z, temperature).item() > 1e-3


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_value_is_t_squared_kl_averaged_over_rows(temperature: float) -> None:
    v, z = logits(2), logits(3)
    p = torch.softmax(z[:, 1:] / temperature, -1)
    q = torch.softmax(v[:, 1:] / temperature, -1)
    expected = temperature ** 2 * (p * (p.log() - q.log())).sum(-1).mean()
    torch.testing.assert_close(kd_loss(v, z, temperature), expected)
    # Rows may come with leading dimensions (B, L, n_items): still the mean over all rows.
    torch.testing.assert_close(kd_loss(v.view(5, 1, 9), z.view(5, 1, 9), temperature), expected)


@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_gradient_matches_the_closed_form(temperature: float) -> None:
    """d/dv [T^2 * mean_rows KL(p || q)] = T * (q - p) / n_rows, with p = softmax(z/T),
    q = softmax(v/T): dKL/dv_i = (q_i - p_i) / T per row, times T^2, over n_rows."""
    v, z = logits(4).requires_grad_(True), logits(5)
    kd_loss(v, z, temperature).backward()
    p = torch.softmax(z[:, 1:] / temperature, -1)
    q = torch.softmax(v.detach()[:, 1:] / temperature, -1)
    expected = temperature * (q - p) / v.shape[0]
    torch.testing.assert_close(v.grad[:, 1:], expected, atol=1e-12, rtol=1e-9)
    assert torch.equal(v.grad[:, 0], torch.zeros(v.shape[0], dtype=v.dtype))


def test_padding_column_gives_finite_loss_and_gradients() -> None:
    v, z = logits(6).float().requires_grad_(True), logits(7).float()
    assert torch.isinf(v[:, 0]).all() and torch.isinf(z[:, 0]).all()
    loss = kd_loss(v, z, 1.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(v.grad).all()


def test_empty_batch_and_bad_arguments() -> None:
    empty = torch.zeros(0, 9, requires_grad=True)
    loss = kd_loss(empty, torch.zeros(0, 9), 2.0)
    assert loss.item() == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(logits(0), logits(1), 0.0)
    with pytest.raises(ValueError, match="shape"):
        kd_loss(logits(0), logits(1, n_items=8), 1.0)
    with pytest.raises(ValueError, match="positions"):
        distillation_loss(models()[1], 1.0, positions="first")


@pytest.mark.parametrize("positions", ["all", "last"])
def test_loss_uses_the_teacher_at_the_positions_with_targets(positions: str) -> None:
    student, teacher = models()
    inputs, targets = batch()
    value = distillation_loss(teacher, 2.0, positions=positions)(student, inputs, targets)
    with torch.no_grad():
        if positions == "all":
            mask = targets != 0
            expected = kd_loss(student(inputs)[mask], teacher(inputs)[mask], 2.0)
        else:
            expected = kd_loss(student(inputs)[:, -1], teacher(inputs)[:, -1], 2.0)
    torch.testing.assert_close(value.detach(), expected)


def test_positions_without_targets_do_not_count() -> None:
    student, teacher = models()
    inputs, targets = batch()
    loss_fn = distillation_loss(teacher, 1.0)
    # KD alone never reads the label values, only which positions have one ...
    relabelled = torch.where(targets != 0, targets % (N_ITEMS - 1) + 1, targets)
    torch.testing.assert_close(loss_fn(student, inputs, relabelled),
                               loss_fn(student, inputs, targets))
    # ... and the rows it averages are exactly those: dropping one target changes the loss.
    fewer = targets.clone()
    fewer[0, -1] = 0
    mask = fewer != 0
    with torch.no_grad():
        expected = kd_loss(student(inputs)[mask], teacher(inputs)[mask], 1.0)
    torch.testing.assert_close(loss_fn(student, inputs, fewer).detach(), expected)
    assert not torch.allclose(loss_fn(student, inputs, fewer), loss_fn(student, inputs, targets))


@pytest.mark.parametrize("positions", ["all", "last"])
def test_hard_weight_adds_the_cross_entropy(positions: str) -> None:
    student, teacher = models()
    inputs, targets = batch()
    soft = distillation_loss(teacher, 2.0, positions=positions)(student, inputs, targets)
    mixed = distillation_loss(teacher, 2.0, hard_weight=0.3, positions=positions)(
        student, inputs, targets)
    with torch.no_grad():
        if positions == "all":
            mask = targets != 0
            ce = F.cross_entropy(student(inputs)[mask], targets[mask])
        else:
            ce = F.cross_entropy(student(inputs)[:, -1], targets[:, -1])
    torch.testing.assert_close((mixed - soft).detach(), 0.3 * ce)


def test_teacher_is_frozen_and_gets_no_gradient() -> None:
    student, teacher = models()
    student.train()
    teacher.train()
    loss_fn = distillation_loss(teacher, 1.0, hard_weight=0.5)
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()  # even if someone flips it back, the loss runs the teacher in eval mode
    loss_fn(student, *batch()).backward()
    assert not teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    grads = [p.grad for p in student.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


def test_freeze_returns_the_model() -> None:
    _, teacher = models()
    assert freeze(teacher.train()) is teacher
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
