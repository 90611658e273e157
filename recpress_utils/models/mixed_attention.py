"""The paper's teacher (eq. 5, Fig. 2): self-attention over the session mixed with attention
over each item's knowledge-graph neighbours in every projection G_p, then a 2-layer MLP.

At position t with item i the hidden state is ``[SelfAttn_t || KGAttn_1(i) || ... || KGAttn_P(i)]``:

* ``SelfAttn_t``: causal scaled dot-product attention over the session (item + learned
  position embeddings, positions counted from the session's first item so left padding does
  not move them).
* ``KGAttn_p(i)``: the query is item i's embedding, keys and values are its neighbours' in
  G_p (padded neighbours masked), and the neighbour weight (PMI, or 1.0 for attribute
  relations) enters the scores as a learned additive bias ``scale_p * w``. An item without
  neighbours in G_p gets a zero vector.

The KG part depends only on the current item, so it is computed once per distinct item of the
batch, and keys/values once per distinct neighbour of the batch.

Neighbour tables are buffers that are not saved with the weights: they are the dataset's
(``kg/neighbors.pt``, int64, about 130 MB at 138k items), stored once per dataset and installed
when a model is built for the data (:func:`recpress_utils.runs.build_for_data`), so every
checkpoint of every seed does not carry a copy. :meth:`MixedAttention.neighbors_for` is the
single place that looks them up, so a subclass can replace it by a live graph traversal.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.models.layers import PositionEmbedding, attention_probs, mlp_head, split_heads
from recpress_utils.sequences import PAD


class MixedAttention(SequentialRecommender):
    """Teacher model; ``n_projections`` must match the tables given to :meth:`set_neighbor_tables`.

    Until tables are set every item has no neighbours (the KG blocks output zeros). Defaults
    are the paper's (emb, Q/K/V and MLP 64; one head); ``n_projections=4`` matches SPEC's four
    properties, and the dropout rate is ours (the paper gives none for the teacher).
    """

    def __init__(self, n_items: int, n_projections: int = 4, emb_dim: int = 64,
                 qkv_dim: int = 64, n_heads: int = 1, dropout: float = 0.1, max_len: int = 50,
                 mlp_hidden: int = 64) -> None:
        if qkv_dim % n_heads:
            raise ValueError(f"qkv_dim ({qkv_dim}) must be divisible by n_heads ({n_heads})")
        if n_projections < 0:
            raise ValueError(f"n_projections must be >= 0, got {n_projections}")
        super().__init__(n_items, emb_dim)
        self.output = mlp_head((1 + n_projections) * qkv_dim, mlp_hidden, n_items, dropout)
        self.n_projections = n_projections
        self.n_heads = n_heads
        self.max_len = max_len
        self.pos_emb = PositionEmbedding(max_len, emb_dim)
        self.self_qkv = nn.Linear(emb_dim, 3 * qkv_dim)
        self.kg_qkv = nn.ModuleList(nn.Linear(emb_dim, 3 * qkv_dim) for _ in range(n_projections))
        self.kg_weight_scale = nn.Parameter(torch.ones(n_projections, n_heads))
        self.dropout = nn.Dropout(dropout)
        no_neighbors = torch.zeros(n_projections, n_items, 0)
        self.register_buffer("neighbor_index", no_neighbors.long(), persistent=False)
        self.register_buffer("neighbor_weight", no_neighbors, persistent=False)

    def set_neighbor_tables(self, tables: Mapping[str, Any]) -> None:
        """Install ``{"index": (P, n_items, M) long, "weight": (P, n_items, M) float}`` tables."""
        index, weight = torch.as_tensor(tables["index"]), torch.as_tensor(tables["weight"])
        expected = (self.n_projections, self.n_items)
        if index.dim() != 3 or tuple(index.shape[:2]) != expected or index.shape != weight.shape:
            raise ValueError(
                f"neighbour tables must both have shape (P={expected[0]}, n_items={expected[1]}, "
                f"M); got index {tuple(index.shape)} and weight {tuple(weight.shape)}"
            )
        if index.numel() and (index.min() < 0 or index.max() >= self.n_items):
            raise ValueError(f"neighbour indices must lie in [0, {self.n_items - 1}]")
        self.neighbor_index = index.to(self.neighbor_index.device, torch.long)
        self.neighbor_weight = weight.to(self.neighbor_weight.device, torch.float32)

    def neighbors_for(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """Neighbour ids and weights ``(..., P, M)`` of ``items`` ``(...)``; id 0 = none."""
        return (self.neighbor_index[:, items].movedim(0, -2),
                self.neighbor_weight[:, items].movedim(0, -2))

    def _self_qkv(self, items: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-head queries, keys and values ``(B, H, L, d)`` of the session's self-attention."""
        x = self.item_emb(items) + self.pos_emb(items)
        return split_heads(self.self_qkv(x), self.n_heads).unbind(0)

    def attention_maps(self, items: Tensor) -> Tensor:
        """The self-attention weights ``(B, L, L)``, averaged over heads (query rows, key columns)."""
        q, k, _ = self._self_qkv(items)
        return attention_probs(q, k, self.attention_mask(items)).mean(dim=1)

    def hidden(self, items: Tensor) -> Tensor:
        q, k, v = self._self_qkv(items)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=self.attention_mask(items))
        parts = [attended.transpose(1, 2).flatten(2)]
        if self.n_projections:
            distinct, inverse = torch.unique(items, return_inverse=True)
            parts.append(self._kg_attention(distinct)[inverse])
        return self.dropout(torch.cat(parts, dim=-1))

    def _kg_attention(self, items: Tensor) -> Tensor:
        """Per-projection neighbour attention, concatenated: ``(U, P * qkv_dim)`` for ``(U,)``."""
        index, weight = self.neighbors_for(items)  # (U, P, M)
        query_in = self.item_emb(items)
        outputs = []
        for p, qkv in enumerate(self.kg_qkv):
            q = split_heads(qkv(query_in)[:, None], self.n_heads)[0]  # (U, H, 1, d)
            # Keys/values depend only on the neighbour item: project each distinct neighbour of
            # the batch once and gather. Neighbours repeat across items (on Yoochoose 1/64 a
            # batch's 9.7k neighbour slots hold 3.2k items), and a projection without edges
            # has one, the padding: 4x fewer rows through the projection than slot by slot.
            neighbours, slot = torch.unique(index[:, p], return_inverse=True)
            projected = qkv(self.item_emb(neighbours))[slot]  # (U, M, 3 * qkv_dim)
            _, k, v = split_heads(projected, self.n_heads).unbind(0)  # (U, H, M, d)
            scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])  # (U, H, 1, M)
            scores = scores + self.kg_weight_scale[p][:, None, None] * weight[:, p, None, None, :]
            present = (index[:, p] != PAD)[:, None, None, :]
            # A finite fill (not -inf) keeps rows without neighbours NaN-free; they are zeroed.
            probs = scores.masked_fill(~present, torch.finfo(scores.dtype).min).softmax(-1)
            outputs.append(((probs * present) @ v).flatten(1))
        return torch.cat(outputs, dim=-1)

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any,
                              **kwargs: Any) -> None:
        """Checkpoints written before the tables left the state dict carry them: adopt them."""
        keys = {key: prefix + "neighbor_" + key for key in ("index", "weight")}
        if all(k in state_dict for k in keys.values()):
            self.set_neighbor_tables({key: state_dict[k] for key, k in keys.items()})
            state_dict = {k: v for k, v in state_dict.items() if k not in keys.values()}
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
