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
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import PositionEmbedding, attention_probs, split_heads
from recpress_utils.sequences import PAD


class Student(SequentialRecommender):
    """Distilled student: 2-head causal self-attention -> causal multi-filter CNN -> items.

    Defaults are the paper's (emb and Q/K/V 64, 2 heads, stride 1, "same" length, dropout 0.5);
    kernel sizes, filter count and the bottleneck width are ours (the paper gives none).
    """

    def __init__(self, n_items: int, emb_dim: int = 64, qkv_dim: int = 64, n_heads: int = 2,
                 kernel_sizes: Sequence[int] = (1, 2, 3), n_filters: int = 64,
                 dropout: float = 0.5, max_len: int = 50, proj_dim: int | None = 64) -> None:
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim ({qkv_dim}) must be divisible by n_heads ({n_heads})")
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not kernel_sizes or min(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes must be a non-empty list of sizes >= 1, "
                             f"got {kernel_sizes}")
        if n_filters < 1 or (proj_dim is not None and proj_dim < 1):
            raise ValueError("n_filters and proj_dim must be >= 1 (proj_dim may be None)")
        conv_out = n_filters * len(kernel_sizes)
        head_in = conv_out if proj_dim is None else proj_dim
        super().__init__(n_items, emb_dim)
        self.output = nn.Sequential(nn.Linear(head_in, n_items))  # one output layer, not the paper's MLP
        self.n_heads = n_heads
        self.max_len = max_len
        self.kernel_sizes = kernel_sizes
        self.pos_emb = PositionEmbedding(max_len, emb_dim)
        self.qkv = nn.Linear(emb_dim, 3 * qkv_dim)
        self.convs = nn.ModuleList(nn.Conv1d(qkv_dim, n_filters, k, stride=1)
                                   for k in kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Identity() if proj_dim is None else nn.Linear(conv_out, proj_dim)

    # -- pieces -----------------------------------------------------------------------------
    def _qkv(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-head queries, keys and values ``(B, H, L, d)`` of the session."""
        x = self.item_emb(items) + self.pos_emb(items)
        return split_heads(self.qkv(x), self.n_heads).unbind(0)

    def _attend(self, items: Tensor, n_queries: int) -> Tensor:
        """Self-attention outputs ``(B, qkv_dim, n_queries)`` for the last ``n_queries``
        positions (channels first, ready for Conv1d); padded positions are zero."""
        q, k, v = self._qkv(items)
        mask = self.attention_mask(items)
        if n_queries < items.shape[1]:
            q, mask = q[:, :, -n_queries:], mask[:, :, -n_queries:]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, Q, d)
        attended = attended.permute(0, 1, 3, 2).flatten(1, 2)  # (B, H*d, Q)
        return attended * (items != PAD)[:, None, -attended.shape[-1]:]

    def _features(self, conv_outputs: list[Tensor]) -> Tensor:
        """ReLU, concatenate the filters, dropout, bottleneck: ``(B, ..., head_in)``."""
        h = torch.cat([F.relu(c) for c in conv_outputs], dim=1).transpose(1, 2)
        return self.proj(self.dropout(h))

    # -- interface --------------------------------------------------------------------------
    def attention_maps(self, items: Tensor) -> Tensor:
        """The self-attention weights ``(B, L, L)``, averaged over heads (query rows, key columns)."""
        q, k, _ = self._qkv(items)
        return attention_probs(q, k, self.attention_mask(items)).mean(dim=1)

    def hidden(self, items: Tensor) -> Tensor:
        a = self._attend(items, items.shape[1])  # (B, C, L)
        # Causal "same": k-1 zeros on the left only, so the length is kept without look-ahead.
        return self._features([conv(F.pad(a, (k - 1, 0)))
                               for k, conv in zip(self.kernel_sizes, self.convs)])

    def last_logits(self, items: Tensor) -> Tensor:
        """``forward(items)[:, -1]``, computing attention for the last max(k) queries only."""
        window = max(self.kernel_sizes)
        a = self._attend(items, min(window, items.shape[1]))
        a = F.pad(a, (window - a.shape[-1], 0))  # (B, C, window); the same zeros as hidden()
        # A convolution at one position is a linear map of its flattened window (B, C * k).
        h = self._features([F.linear(a[..., window - k:].flatten(1), conv.weight.flatten(1),
                                     conv.bias)[..., None]
                            for k, conv in zip(self.kernel_sizes, self.convs)])
        return self.head(h[:, -1])
