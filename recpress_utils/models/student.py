"""The paper's student (Section 4, Fig. 3): multi-head self-attention over the session, then a
1-D CNN with several filters, then logits over all items. No knowledge graph anywhere, so
inference never traverses G (that is the point of distilling the teacher into it).

Per position t of a left-padded session:

1. ``x = item_emb + pos_emb``, positions counted from the session's first real item (as in the
   teacher, so left padding does not move them).
2. 2-head causal self-attention (Q/K/V 64) with ``F.scaled_dot_product_attention`` and the
   shared :meth:`SequentialRecommender.attention_mask`. There is no separate attention output
   projection: the convolution that follows is itself a learned linear map of the attention
   features, so a linear projection in between would be absorbed by it. Outputs at padded
   positions are zeroed, so they look exactly like the convolution's own zero padding.
3. One ``Conv1d`` per kernel size (default 1, 2, 3; ``n_filters`` each; stride 1) along the
   **time axis**, ReLU, concatenated, dropout 0.5.
4. A pointwise linear bottleneck (``proj_dim``, = a kernel-1 convolution) and a single output
   ``Linear(proj_dim, n_items)``; not the teacher's 2-layer MLP head.

Causality and padding "same". The paper asks for stride 1 and padding "same" so that "the
output of the NN is an embedding of the next item, given the user's previous interactions":
one output per position, the sequence length kept. A centred "same" padding (as in Keras or
``nn.Conv1d(padding="same")``) would let position t read the next ceil((k-1)/2) positions, i.e.
the future the model is asked to predict. We use the causal form of "same": the time axis
is padded on the left with k-1 zeros and not at all on the right, so the output still has the
input's length (what "same" is for) and position t sees only attention outputs at t-k+1..t,
each of which is itself causal. We convolve over time rather than across the 64 features of
each position because the paper's CNN consumes the attention outputs *of the session* (the
sequence) and its "stride"/"same padding" describe sliding along that sequence; a convolution
across an embedding's feature axis has no natural ordering to slide along.

The output layer is the costly part at inference (``n_items`` rows). Mapping the 3 x 64
concatenated filters straight to ``n_items`` would triple its cost and make the student larger
than the teacher; the linear bottleneck to ``proj_dim`` (64, the teacher's MLP width) keeps the
output layer exactly as wide as the teacher's last layer (a rank-64 factorisation of the
``3 * n_filters -> n_items`` map). ``proj_dim=None`` maps the filters to the items directly.

:meth:`Student.last_logits` runs attention only for the last ``max(kernel_sizes)`` queries and
each convolution at the last position only; it equals ``forward(items)[:, -1]``.

Depth (``n_blocks``, ours: the paper's student has one block). The distillation toolkit compares
students of several sizes, among them deeper ones. Each block below the top one is the same
attention + CNN unit, mapped back to the embedding width and added to its input (a residual
connection, so a second block starts as a small change of the first's input rather than a
replacement of it). The top block keeps the module names of the one-block student, so its
trained checkpoints load unchanged; only the top block has the fast last-position path.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import PositionEmbedding, attention_probs, split_heads
from recpress_utils.sequences import PAD


def _attend(qkv: nn.Linear, n_heads: int, x: Tensor, mask: Tensor, real: Tensor,
            n_queries: int) -> Tensor:
    """Causal self-attention outputs ``(B, qkv_dim, n_queries)`` of ``x`` ``(B, L, emb)`` for its
    last ``n_queries`` positions (channels first, ready for Conv1d); padded positions are zero."""
    q, k, v = split_heads(qkv(x), n_heads).unbind(0)
    if n_queries < x.shape[1]:
        q, mask = q[:, :, -n_queries:], mask[:, :, -n_queries:]
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, Q, d)
    attended = attended.permute(0, 1, 3, 2).flatten(1, 2)  # (B, H*d, Q)
    return attended * real[:, None, -attended.shape[-1]:]


def _convolve(convs: nn.ModuleList, kernel_sizes: tuple[int, ...], a: Tensor) -> list[Tensor]:
    """Each filter bank over the whole sequence ``a`` ``(B, C, L)``, causal "same": k-1 zeros on
    the left only, so the length is kept without look-ahead."""
    return [conv(F.pad(a, (k - 1, 0))) for k, conv in zip(kernel_sizes, convs)]


def _filters(conv_outputs: list[Tensor]) -> Tensor:
    """ReLU of every filter bank, concatenated, positions first: ``(B, L, n_filters * banks)``."""
    return torch.cat([F.relu(c) for c in conv_outputs], dim=1).transpose(1, 2)


class _LowerBlock(nn.Module):
    """A block below the student's top one: attention + causal CNN, mapped back to the embedding
    width and added to the block's input (residual)."""

    def __init__(self, emb_dim: int, qkv_dim: int, n_heads: int, kernel_sizes: tuple[int, ...],
                 n_filters: int, dropout: float) -> None:
        super().__init__()
        self.n_heads, self.kernel_sizes = n_heads, kernel_sizes
        self.qkv = nn.Linear(emb_dim, 3 * qkv_dim)
        self.convs = nn.ModuleList(nn.Conv1d(qkv_dim, n_filters, k) for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.back = nn.Linear(n_filters * len(kernel_sizes), emb_dim)

    def forward(self, x: Tensor, mask: Tensor, real: Tensor) -> Tensor:
        a = _attend(self.qkv, self.n_heads, x, mask, real, x.shape[1])
        h = _filters(_convolve(self.convs, self.kernel_sizes, a))
        return (x + self.back(self.dropout(h))) * real[..., None]


class Student(SequentialRecommender):
    """Distilled student: 2-head causal self-attention -> causal multi-filter CNN -> items.

    Defaults are the paper's (emb and Q/K/V 64, 2 heads, stride 1, "same" length, dropout 0.5,
    one block); kernel sizes, filter count, the bottleneck width and deeper variants are ours
    (the paper gives none).
    """

    def __init__(self, n_items: int, emb_dim: int = 64, qkv_dim: int = 64, n_heads: int = 2,
                 kernel_sizes: Sequence[int] = (1, 2, 3), n_filters: int = 64,
                 dropout: float = 0.5, max_len: int = 50, proj_dim: int | None = 64,
                 n_blocks: int = 1) -> None:
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim ({qkv_dim}) must be divisible by n_heads ({n_heads})")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be a non-empty list of sizes >= 1, "
                             f"got {kernel_sizes}")
        if n_filters < 1 or (proj_dim is not None and proj_dim < 1):
            raise ValueError("n_filters and proj_dim must be >= 1 (proj_dim may be None)")
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        conv_out = n_filters * len(kernel_sizes)
        head_in = conv_out if proj_dim is None else proj_dim
        super().__init__(n_items, emb_dim)
        self.output = nn.Sequential(nn.Linear(head_in, n_items))  # one output layer, not the paper's MLP
        self.n_heads = n_heads
        self.max_len = max_len
        self.kernel_sizes = kernel_sizes
        self.pos_emb = PositionEmbedding(max_len, emb_dim)
        self.lower = nn.ModuleList(_LowerBlock(emb_dim, qkv_dim, n_heads, kernel_sizes, n_filters,
                                               dropout) for _ in range(n_blocks - 1))
        self.qkv = nn.Linear(emb_dim, 3 * qkv_dim)  # the top block: the one-block student's names
        self.convs = nn.ModuleList(nn.Conv1d(qkv_dim, n_filters, k, stride=1)
                                   for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Identity() if proj_dim is None else nn.Linear(conv_out, proj_dim)

    # -- pieces -----------------------------------------------------------------------------
    def _top_input(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The top block's input ``(B, L, emb)`` (embeddings through the lower blocks), the
        attention mask and the real-item mask."""
        mask, real = self.attention_mask(items), items != PAD
        x = self.item_emb(items) + self.pos_emb(items)
        for block in self.lower:
            x = block(x, mask, real)
        return x, mask, real

    def _features(self, conv_outputs: list[Tensor]) -> Tensor:
        """ReLU, concatenate the filters, dropout, bottleneck: ``(B, ..., head_in)``."""
        return self.proj(self.dropout(_filters(conv_outputs)))

    # -- interface --------------------------------------------------------------------------
    def attention_maps(self, items: Tensor) -> Tensor:
        """The top block's self-attention weights ``(B, L, L)``, averaged over heads (query rows,
        key columns)."""
        x, mask, _ = self._top_input(items)
        q, k, _ = split_heads(self.qkv(x), self.n_heads).unbind(0)
        return attention_probs(q, k, mask).mean(dim=1)

    def hidden(self, items: Tensor) -> Tensor:
        x, mask, real = self._top_input(items)
        a = _attend(self.qkv, self.n_heads, x, mask, real, items.shape[1])  # (B, C, L)
        return self._features(_convolve(self.convs, self.kernel_sizes, a))

    def last_logits(self, items: Tensor) -> Tensor:
        """``forward(items)[:, -1]``, computing the top block's attention for the last max(k)
        queries only."""
        window = max(self.kernel_sizes)
        x, mask, real = self._top_input(items)
        a = _attend(self.qkv, self.n_heads, x, mask, real, min(window, items.shape[1]))
        a = F.pad(a, (window - a.shape[-1], 0))  # (B, C, window); the same zeros as hidden()
        # A convolution at one position is a linear map of its flattened window (B, C * k).
        h = self._features([F.linear(a[..., window - k:].flatten(1), conv.weight.flatten(1),
                                     conv.bias)[..., None]
                            for k, conv in zip(self.kernel_sizes, self.convs)])
        return self.head(h[:, -1])
