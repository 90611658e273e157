"""Pieces several models share, written once: positions counted from a session's first item,
the multi-head split of a fused Q/K/V projection, attention probabilities (for the methods that
distil attention maps), the rotation that lets a recurrent layer ignore left padding, and the
output heads: the paper's MLP, and the per-item bias of a head tied to the input embeddings
(SASRec, GRU4Rec's constrained embedding)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from recpress_utils.sequences import PAD


class PositionEmbedding(nn.Embedding):
    """Learned position embeddings ``(max_len + 1, dim)`` looked up from the *items*.

    Positions count from the session's first real item (1, 2, ...), so left padding does not move
    them; padding gets position 0 (a zero row) and positions past ``max_len`` share the last row.
    """

    def __init__(self, max_len: int, dim: int) -> None:
        super().__init__(max_len + 1, dim, padding_idx=0)
        self.max_len = max_len

    def forward(self, items: Tensor) -> Tensor:
        real = items != PAD
        return super().forward((real.cumsum(dim=1) * real).clamp(max=self.max_len))


def split_heads(qkv: Tensor, n_heads: int) -> Tensor:
    """``(B, L, 3 * D)`` fused projections -> ``(3, B, H, L, D / H)``: queries, keys, values."""
    b, length, width = qkv.shape
    return qkv.view(b, length, 3, n_heads, width // (3 * n_heads)).permute(2, 0, 3, 1, 4)


def attention_probs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor:
    """The weights ``F.scaled_dot_product_attention`` applies: ``softmax(q k^T / sqrt(d))`` over the
    keys ``mask`` allows (True = may attend), ``(B, H, Lq, Lk)``. The models attend through SDPA,
    which does not return them; this recomputes them for attention distillation."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    return scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)


def shift_rows(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate each row of ``x`` (B, L, ...) left by ``shift[b]`` positions along dim 1."""
    length = x.shape[1]
    index = (torch.arange(length, device=x.device) + shift[:, None]) % length
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def normal_init(module: nn.Module, std: float = 0.02) -> None:
    """BERT-style initialisation, for ``model.apply(partial(normal_init, std=...))``: linear and
    embedding weights ``N(0, std)``, linear biases zero, padding rows zero (RecBole's
    ``initializer_range``; the transformer peers' published recipes start from it)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


class ItemBias(nn.Module):
    """Adds a per-item bias to logits ``(..., n_items)``; a parameter or a fixed zero buffer."""

    def __init__(self, n_items: int, learnable: bool) -> None:
        super().__init__()
        if learnable:
            self.bias = nn.Parameter(torch.zeros(n_items))
        else:
            self.register_buffer("bias", torch.zeros(n_items))

    def forward(self, logits: Tensor) -> Tensor:
        return logits + self.bias


def mlp_head(head_in: int, mlp_hidden: int, n_items: int, dropout: float) -> nn.Sequential:
    """The paper's output head: ``Linear(head_in, mlp_hidden) -> ReLU -> Dropout ->
    Linear(mlp_hidden, n_items)`` (the LSTM baseline, Mixed Attention, untied BERT4Rec)."""
    return nn.Sequential(nn.Linear(head_in, mlp_hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(mlp_hidden, n_items))
