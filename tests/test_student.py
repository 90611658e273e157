"""The distilled student: causal attention + causal CNN, its fast last-position path, its size,
and that distillation moves it toward the teacher. (Causality, padding invariance, overfitting
and the shared interface are also checked for every registered model in test_models.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from recpress_utils.distill import distillation_loss, kd_loss
from recpress_utils.models import MODELS, build_model, uses_kg
from recpress_utils.models.mixed_attention import MixedAttention
from recpress_utils.models.student import Student
from recpress_utils.sequences import Sessions, left_pad
from recpress_utils.losses import full_cross_entropy
from recpress_utils.train import TrainConfig, count_parameters, fit
from tests.conftest import assert_causal

N_ITEMS = 31
TINY = {"emb_dim": 16, "qkv_dim": 16, "n_heads": 2, "n_filters": 8, "max_len": 12,
        "proj_dim": 16}
TINY_TEACHER = {"n_projections": 2, "emb_dim": 16, "qkv_dim": 16, "n_heads": 1, "max_len": 12,
                "mlp_hidden": 16}


def tiny_student(seed: int = 0, **overrides) -> Student:
    torch.manual_seed(seed)
    return Student(N_ITEMS, **{**TINY, **overrides}).eval()


def padded_batch(seed: int, lengths: tuple[int, ...], width: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return left_pad([rng.integers(1, N_ITEMS, size=n) for n in lengths], width)


def test_registered_with_paper_defaults() -> None:
    assert MODELS["student"] is Student
    model = build_model("student", N_ITEMS)
    assert model.n_heads == 2 and model.qkv.out_features == 3 * 64 and model.emb_dim == 64
    assert model.kernel_sizes == (1, 2, 3)
    assert all(c.stride == (1,) and c.in_channels == 64 and c.out_channels == 64
               for c in model.convs)
    assert isinstance(model.dropout, nn.Dropout) and model.dropout.p == 0.5
    with pytest.raises(ValueError, match="kernel_size"):
        build_model("student", N_ITEMS, kernel_size=3)
    with pytest.raises(ValueError, match="divisible"):
        Student(N_ITEMS, qkv_dim=64, n_heads=3)
    with pytest.raises(ValueError, match="kernel_sizes"):
        Student(N_ITEMS, kernel_sizes=())


def test_no_knowledge_graph() -> None:
    model = build_model("student", N_ITEMS)
    assert not uses_kg("student")
    names = [n for n, _ in model.named_parameters()] + [n for n, _ in model.named_buffers()]
    assert not any("kg" in n or "neighbor" in n for n in names), names
    assert not hasattr(model, "set_neighbor_tables")


@pytest.mark.parametrize("kernel_sizes", [(1, 2, 3), (3, 5), (1,), (4,)])
def test_causal_for_every_kernel_size(kernel_sizes) -> None:
    model = tiny_student(kernel_sizes=kernel_sizes)
    items = padded_batch(1, (9, 6, 2, 9), 9)
    base, last_changed = assert_causal(model, items, N_ITEMS)
    # ... and the future is not ignored altogether: later positions do change.
    assert not torch.allclose(last_changed[:, -1, 1:], base[:, -1, 1:])


def test_output_keeps_the_sequence_length() -> None:
    model = tiny_student()
    items = padded_batch(2, (5, 3), 7)
    assert model.hidden(items).shape == (2, 7, TINY["proj_dim"])
    assert model(items).shape == (2, 7, N_ITEMS)


@pytest.mark.parametrize("proj_dim", [16, None])
@pytest.mark.parametrize("width", [1, 2, 3, 4, 12, 20])
def test_last_logits_equal_forward_last(width: int, proj_dim) -> None:
    model = tiny_student(proj_dim=proj_dim)
    lengths = tuple(min(width, n) for n in (width, 1, 2, 3, max(width - 1, 1)))
    items = padded_batch(3, lengths, width)
    with torch.no_grad():
        fast, full = model.last_logits(items), model(items)[:, -1]
    assert fast.shape == (len(lengths), N_ITEMS)
    assert torch.isinf(fast[:, 0]).all() and (fast[:, 0] < 0).all()
    torch.testing.assert_close(fast[:, 1:], full[:, 1:], atol=1e-5, rtol=1e-5)


def test_a_deeper_student_is_causal_and_its_fast_path_still_equals_forward() -> None:
    model = tiny_student(n_blocks=2)
    assert len(model.lower) == 1 and model.lower[0].back.out_features == TINY["emb_dim"]
    items = padded_batch(6, (9, 6, 2, 1), 9)
    assert_causal(model, items, N_ITEMS)
    with torch.no_grad():
        torch.testing.assert_close(model.last_logits(items)[:, 1:], model(items)[:, -1, 1:],
                                   atol=1e-5, rtol=1e-5)
        # The lower block is used, and only the top block's maps are distilled.
        one_block = Student(N_ITEMS, **TINY).eval()
        one_block.load_state_dict({k: v for k, v in model.state_dict().items()
                                   if not k.startswith("lower.")})
        assert not torch.allclose(one_block(items)[..., 1:], model(items)[..., 1:])
        assert model.attention_maps(items).shape == (4, 9, 9)
    with pytest.raises(ValueError, match="n_blocks"):
        tiny_student(n_blocks=0)


def test_a_one_block_checkpoint_keeps_its_module_names() -> None:
    """Students trained before depth existed load unchanged (the toolkit's born-again teacher and
    the latency jobs read them)."""
    names = set(tiny_student().state_dict())
    assert {"qkv.weight", "convs.0.weight", "proj.weight", "output.0.weight"} <= names
    assert not any(n.startswith("lower.") for n in names)


def test_last_logits_still_read_items_before_the_kernel_window() -> None:
    """The fast path reads keys/values of the whole session: an early item still matters."""
    model = tiny_student()
    items = padded_batch(4, (8, 8), 8)
    changed = items.clone()
    changed[:, 0] = changed[:, 0] % (N_ITEMS - 1) + 1
    with torch.no_grad():
        assert not torch.allclose(model.last_logits(changed)[:, 1:],
                                  model.last_logits(items)[:, 1:])
        torch.testing.assert_close(model.last_logits(changed)[:, 1:],
                                   model(changed)[:, -1, 1:], atol=1e-5, rtol=1e-5)


def test_dropout_only_in_training() -> None:
    model = tiny_student()
    assert any(isinstance(m, nn.Dropout) and m.p == 0.5 for m in model.modules())
    items = padded_batch(5, (6, 4, 6), 6)
    with torch.no_grad():
        assert torch.equal(model(items), model(items))
        assert torch.equal(model.last_logits(items), model.last_logits(items))
        model.train()
        torch.manual_seed(0)
        first = model(items)
        second = model(items)
        assert not torch.equal(first[..., 1:], second[..., 1:])


def test_smaller_than_the_teacher_at_paper_scale() -> None:
    n_items = 2611
    student = build_model("student", n_items)
    teacher = build_model("mixed_attention", n_items, n_projections=4)
    assert count_parameters(student) < count_parameters(teacher)
    # The output layer is as wide as the teacher's last layer (64 -> n_items).
    assert student.output[-1].in_features == teacher.output[-1].in_features == 64


def _pattern_sessions(seed: int, n: int) -> Sessions:
    """Sessions that mostly walk i -> i + 1 (mod 30), with some random steps."""
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(n):
        length = int(rng.integers(3, 9))
        s = [int(rng.integers(1, N_ITEMS))]
        for _ in range(length - 1):
            step = 1 if rng.random() < 0.8 else int(rng.integers(1, N_ITEMS - 1))
            s.append((s[-1] - 1 + step) % (N_ITEMS - 1) + 1)
        items.append(np.array(s, dtype=np.int64))
    return Sessions(items, [np.ones(len(s), dtype=np.int8) for s in items])


def _kl_to_teacher(student: Student, teacher: MixedAttention, data: Sessions) -> float:
    inputs = left_pad([s[:-1] for s in data.items], 8)
    targets = left_pad([s[1:] for s in data.items], 8)
    mask = targets != 0
    student.eval()
    with torch.no_grad():
        return kd_loss(student(inputs)[mask], teacher(inputs)[mask], 1.0).item()


def test_distillation_moves_the_student_toward_the_teacher() -> None:
    torch.manual_seed(0)
    train, valid = _pattern_sessions(0, 256), _pattern_sessions(1, 64)
    cfg = TrainConfig(epochs=6, batch_size=32, lr=1e-2, patience=10, device="cpu")
    teacher = MixedAttention(N_ITEMS, **TINY_TEACHER)
    fit(teacher, train, valid, cfg, seed=0, loss_fn=full_cross_entropy("all"), progress=False)
    teacher_state = {k: v.clone() for k, v in teacher.state_dict().items()}

    student = tiny_student(seed=1)
    before = _kl_to_teacher(student, teacher, train)
    fit(student, train, valid, cfg, seed=0, loss_fn=distillation_loss(teacher, 1.0),
        progress=False)
    after = _kl_to_teacher(student, teacher, train)
    assert after < 0.5 * before, (before, after)
    # The teacher was only read: frozen, in eval mode, unchanged.
    assert not teacher.training
    assert not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(teacher_state[k], v) for k, v in teacher.state_dict().items())
