"""Session-based nearest neighbours: V-SkNN (Ludewig & Jannach, 2018) and STAN (Garg et al., 2019).

Nothing is trained. :meth:`SessionKNN.fit_counts` indexes the training sessions (their list order
is time order: every prepared split is sorted by session end) in two sparse session x item
matrices: which items a session holds, and the position of each item's last occurrence in it.
Scoring the prefix ``s = (s_1 .. s_l)`` of a session:

1. **Query weights.** Each distinct item of ``s`` gets a weight from the position ``p`` (1-based)
   of its last occurrence, the most recent item the most: V-SkNN ``w = max(0.1, 1 - 0.1 (l - p))``
   (the linear decay of Ludewig & Jannach), STAN ``w = exp((p - l) / lambda_position)``.
2. **Similarity** with every training session ``n`` sharing an item:
   V-SkNN ``sim = sum_{i in s & n} w_i``; STAN the same sum over ``sqrt(|s| |n|)`` (distinct
   items) times ``exp(-age(n) / lambda_recency)``, where ``age(n)`` is the number of training
   sessions that ended after ``n`` (the SR-GNN files carry no timestamps; the order does).
3. **Neighbours.** V-SkNN keeps, of the sessions sharing an item, the ``sample_size`` most recent,
   then the ``k`` most similar; STAN the ``k`` most similar. Equal similarities go to the more
   recent session, so the result is deterministic.
4. **Item scores.** ``score(i) = sum_{n in N(s), i in n} sim(s, n) * w_n(i)``: V-SkNN ``w_n = 1``;
   STAN ``w_n(i) = exp(-|pos_n(i) - pos_n(r)| / lambda_neighbour)``, with ``r`` the most recent
   item of ``s`` that ``n`` holds, so items close to where the two sessions meet count more.

Items no neighbour holds score 0 and tie (the metrics rank a tie pessimistically); items of the
current session are kept (in sessions a repeat is a real target). Scores come from scipy.sparse
products and per-batch numpy, never a Python loop over training sessions; the per-query loop
over the candidate neighbours is the only one. Scores are computed on the CPU and returned on
the input's device. The indexed sessions are saved with the model (``get_extra_state``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from recpress_utils.models.base import SequentialRecommender
from recpress_utils.sequences import PAD


class SessionKNN(SequentialRecommender):
    """Shared index and scoring of :class:`VSKNN` and :class:`STAN` (see the module docstring).

    ``forward`` gives every prefix's scores (position t sees items <= t), so the shared
    causality and padding tests apply; evaluation calls :meth:`last_logits` only.
    """

    default_loss = "counts"  # fitted by indexing the training sessions, no gradient steps
    fit_label: ClassVar[str] = "nearest training sessions"  # what its display name says instead of a loss
    #: STAN weighs neighbour items by their distance to the shared item; V-SkNN does not.
    neighbour_positions: ClassVar[bool] = False

    def __init__(self, n_items: int, k: int = 100) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        super().__init__(n_items, emb_dim=1)
        self.k = k
        self._positions: sp.csr_matrix | None = None  # (S, n_items): last position of item in session, 1-based

    # -- the index --------------------------------------------------------------------------
    def fit_counts(self, train_items: list[np.ndarray]) -> np.ndarray:
        """Index the training sessions (in time order); returns each item's training count."""
        rows, cols, pos = [], [], []
        for row, items in enumerate(train_items):
            items = np.asarray(items, dtype=np.int64)
            items = items[items != PAD]
            if items.size and (items.min() < 1 or items.max() >= self.n_items):
                raise ValueError(f"item ids must be in [1, {self.n_items - 1}]")
            rows.append(np.full(items.size, row))
            cols.append(items)
            pos.append(np.arange(1, items.size + 1))
        rows, cols, pos = (np.concatenate(a) if a else np.zeros(0, np.int64) for a in (rows, cols, pos))
        counts = np.bincount(cols, minlength=self.n_items)
        self._set_index(_last_occurrences(rows, cols, pos, len(train_items), self.n_items))
        return counts

    def _set_index(self, positions: sp.csr_matrix) -> None:
        self._positions = positions
        self._binary = positions.astype(bool).astype(np.float64).tocsr()
        self._by_item = self._binary.T.tocsr()  # (n_items, S): the sessions holding each item
        self._distinct = np.diff(positions.indptr)  # distinct items per session
        n_sessions = positions.shape[0]
        self._age = (n_sessions - 1 - np.arange(n_sessions)).astype(np.float64)
        # sorted keys session * n_items + item of every entry: finds pos_n(item) without a loop
        row_of = np.repeat(np.arange(n_sessions), self._distinct)
        self._keys = row_of * self.n_items + positions.indices
        self._key_positions = positions.data

    def get_extra_state(self) -> dict[str, Any]:
        p = self._positions
        if p is None:
            return {}
        return {"shape": p.shape, "indptr": torch.from_numpy(p.indptr.astype(np.int64)),
                "indices": torch.from_numpy(p.indices.astype(np.int64)),
                "data": torch.from_numpy(p.data.astype(np.int64))}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state:
            self._set_index(sp.csr_matrix((state["data"].numpy(), state["indices"].numpy(),
                                           state["indptr"].numpy()), shape=tuple(state["shape"])))

    # -- scoring ----------------------------------------------------------------------------
    def query_weights(self, positions: np.ndarray, length: np.ndarray) -> np.ndarray:
        """Weight of a query item at 1-based position ``positions`` in a prefix of ``length``."""
        raise NotImplementedError

    def session_factor(self, query_distinct: np.ndarray, sessions: np.ndarray) -> np.ndarray | None:
        """A per-(query, session) factor on the raw overlap similarity; None for none."""
        return None

    def select(self, sessions: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Which candidates of one query are its neighbours (indices into ``sessions``)."""
        return _top_k(sessions, sims, self.k)

    def item_weights(self, distance: np.ndarray) -> np.ndarray:
        """Weight of a neighbour's item at ``distance`` positions from the shared item."""
        return np.ones_like(distance, dtype=np.float64)

    def hidden(self, items: Tensor) -> Tensor:
        raise NotImplementedError("a session-kNN model has no hidden states: use last_logits")

    def forward(self, items: Tensor) -> Tensor:
        """Scores ``(B, L, n_items)`` after every prefix (column t sees items up to t only)."""
        return torch.stack([self.last_logits(items[:, :t + 1]) for t in range(items.shape[1])], dim=1)

    def last_logits(self, items: Tensor) -> Tensor:
        """Scores ``(B, n_items)`` of the next item after each left-padded session in ``items``."""
        if self._positions is None:
            raise RuntimeError("the model has no training sessions: call fit_counts first")
        scores = self._scores(items.detach().cpu().numpy())
        return self.mask_padding_logit(torch.from_numpy(scores).to(device=items.device,
                                                                   dtype=torch.float32))

    def _scores(self, batch: np.ndarray) -> np.ndarray:
        n_rows = batch.shape[0]
        real = batch != PAD
        length = real.sum(axis=1)
        position = np.cumsum(real, axis=1)  # 1-based position among the real items
        rows, cols = np.nonzero(real)
        items, pos = batch[rows, cols], position[rows, cols]
        # the last occurrence of each (row, item): entries are in row-major, position order
        keys = rows * self.n_items + items
        last = np.unique(keys[::-1], return_index=True)[1]
        last = len(keys) - 1 - last
        q_rows, q_items, q_pos = rows[last], items[last], pos[last]
        weights = self.query_weights(q_pos.astype(np.float64), length[q_rows].astype(np.float64))
        query = sp.csr_matrix((weights, (q_rows, q_items)), shape=(n_rows, self.n_items))
        distinct = np.diff(query.indptr)
        sims = (query @ self._by_item).tocsr()  # (B, S) overlap similarity
        sims.sort_indices()
        pair_rows, pair_sessions, pair_sims = [], [], []
        for row in range(n_rows):
            start, end = sims.indptr[row], sims.indptr[row + 1]
            if start == end:
                continue
            sessions, values = sims.indices[start:end], sims.data[start:end]
            factor = self.session_factor(np.full(end - start, distinct[row]), sessions)
            if factor is not None:
                values = values * factor
            keep = self.select(sessions, values)
            pair_rows.append(np.full(len(keep), row))
            pair_sessions.append(sessions[keep])
            pair_sims.append(values[keep])
        scores = np.zeros((n_rows, self.n_items))
        if not pair_rows:
            return scores
        pair_rows, pair_sessions, pair_sims = map(np.concatenate, (pair_rows, pair_sessions, pair_sims))
        # every item of every neighbour: ranges of the index's CSR rows, gathered without a loop
        starts, sizes = self._positions.indptr[pair_sessions], self._distinct[pair_sessions]
        pair_of = np.repeat(np.arange(len(pair_sessions)), sizes)
        entry = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
        contribution = pair_sims[pair_of]
        if self.neighbour_positions:
            shared = self._shared_positions(batch, pair_rows, pair_sessions)
            distance = np.abs(self._positions.data[entry] - shared[pair_of]).astype(np.float64)
            contribution = contribution * self.item_weights(distance)
        np.add.at(scores, (pair_rows[pair_of], self._positions.indices[entry]), contribution)
        return scores

    def _shared_positions(self, batch: np.ndarray, pair_rows: np.ndarray,
                          pair_sessions: np.ndarray) -> np.ndarray:
        """``pos_n(r)`` for each (query, neighbour) pair: the position in the neighbour of the
        query's most recent item that the neighbour holds (one always exists: they share one)."""
        recent_first = batch[pair_rows][:, ::-1]  # (P, L), padding last
        keys = pair_sessions[:, None] * self.n_items + recent_first
        found = np.searchsorted(self._keys, keys)
        found = np.minimum(found, len(self._keys) - 1)
        hit = (self._keys[found] == keys) & (recent_first != PAD)
        first = hit.argmax(axis=1)
        return self._key_positions[found[np.arange(len(first)), first]]


def _top_k(sessions: np.ndarray, sims: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most similar candidates, equal similarities to the more recent session."""
    if len(sims) > k:  # a partition first: a query may share an item with tens of thousands
        kth = np.partition(sims, len(sims) - k)[len(sims) - k]
        candidates = np.flatnonzero(sims >= kth)
    else:
        candidates = np.arange(len(sims))
    order = np.lexsort((-sessions[candidates], -sims[candidates]))
    return candidates[order[:k]]


def _last_occurrences(rows: np.ndarray, cols: np.ndarray, pos: np.ndarray, n_sessions: int,
                      n_items: int) -> sp.csr_matrix:
    """The (session, item) -> last 1-based position matrix of the training sessions."""
    keys = rows * n_items + cols
    order = np.lexsort((pos, keys))
    keys, pos = keys[order], pos[order]
    is_last = np.append(keys[1:] != keys[:-1], True) if keys.size else np.zeros(0, bool)
    keys, pos = keys[is_last], pos[is_last]
    matrix = sp.csr_matrix((pos, (keys // n_items, keys % n_items)), shape=(n_sessions, n_items),
                           dtype=np.int64)
    matrix.sort_indices()
    return matrix


class VSKNN(SessionKNN):
    """V-SkNN: linear decay over the query's positions, the ``sample_size`` most recent candidate
    sessions, then the ``k`` most similar (Ludewig & Jannach, 2018)."""

    def __init__(self, n_items: int, k: int = 100, sample_size: int = 1000) -> None:
        if sample_size < 1:
            raise ValueError(f"sample_size must be >= 1, got {sample_size}")
        super().__init__(n_items, k)
        self.sample_size = sample_size

    def query_weights(self, positions: np.ndarray, length: np.ndarray) -> np.ndarray:
        return np.maximum(0.1, 1.0 - 0.1 * (length - positions))

    def select(self, sessions: np.ndarray, sims: np.ndarray) -> np.ndarray:
        recent = np.arange(len(sessions))
        if len(sessions) > self.sample_size:
            recent = recent[-self.sample_size:]  # indices are sorted: the largest are the newest
        return recent[_top_k(sessions[recent], sims[recent], self.k)]


class STAN(SessionKNN):
    """STAN: exponential decays over the query's positions, the neighbours' age and the
    neighbours' item positions (Garg et al., 2019). ``lambda_recency`` is in sessions; None
    switches the age decay off."""

    neighbour_positions = True

    def __init__(self, n_items: int, k: int = 100, lambda_position: float = 4.0,
                 lambda_recency: float | None = None, lambda_neighbour: float = 4.0) -> None:
        for name, value in (("lambda_position", lambda_position), ("lambda_neighbour", lambda_neighbour),
                            ("lambda_recency", lambda_recency if lambda_recency is not None else 1.0)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        super().__init__(n_items, k)
        self.lambda_position = lambda_position
        self.lambda_recency = lambda_recency
        self.lambda_neighbour = lambda_neighbour

    def query_weights(self, positions: np.ndarray, length: np.ndarray) -> np.ndarray:
        return np.exp((positions - length) / self.lambda_position)

    def session_factor(self, query_distinct: np.ndarray, sessions: np.ndarray) -> np.ndarray:
        factor = 1.0 / np.sqrt(query_distinct * self._distinct[sessions])
        if self.lambda_recency is not None:
            factor = factor * np.exp(-self._age[sessions] / self.lambda_recency)
        return factor

    def item_weights(self, distance: np.ndarray) -> np.ndarray:
        return np.exp(-distance / self.lambda_neighbour)


__all__ = ["STAN", "SessionKNN", "VSKNN"]
