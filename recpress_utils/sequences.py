"""Prepared sessions as tensors: the one place that decides padding and what a target is.

Convention used by every model: sequences are **left-padded** with item 0, so position -1 is
always the latest item. A model's output at position t may depend only on positions <= t.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

PAD = 0
TargetMode = Literal["last", "rest"]


@dataclass
class Sessions:
    """One split: per session, item indices and action strengths, oldest first."""

    items: list[np.ndarray]
    actions: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.items)


def load_sessions(prepared_dir: str | Path, split: str) -> Sessions:
    """Read ``<prepared_dir>/<split>.parquet`` written by :mod:`recpress_utils.data.prepare`."""
    table = pq.read_table(Path(prepared_dir) / f"{split}.parquet", columns=["items", "actions"])
    return Sessions(_rows(table.column("items"), np.int64), _rows(table.column("actions"), np.int8))


def _rows(column: pa.ChunkedArray, dtype: type) -> list[np.ndarray]:
    """A list column as one array per row, cut from one flat array by the list offsets: no Python
    object per item (``to_pylist`` took 4 s per 300k sessions; this, a fraction of a second)."""
    array = column.combine_chunks()
    if len(array) == 0:
        return []
    offsets = array.offsets.to_numpy()
    flat = array.flatten().to_numpy(zero_copy_only=False).astype(dtype)
    return np.split(flat, offsets[1:-1] - offsets[0])


def n_items(prepared_dir: str | Path) -> int:
    """Number of item ids including padding (item indices run 1..N, so N + 1)."""
    return pq.read_metadata(Path(prepared_dir) / "items.parquet").num_rows + 1


def left_pad(seqs: Sequence[np.ndarray], length: int | None = None) -> torch.Tensor:
    """Stack sequences right-aligned into a (B, L) LongTensor; longer ones keep their last L items."""
    length = length or max((len(s) for s in seqs), default=1)
    out = np.zeros((len(seqs), max(length, 1)), dtype=np.int64)
    for row, s in enumerate(seqs):
        s = s[-length:]
        if len(s):
            out[row, -len(s):] = s
    return torch.from_numpy(out)


def eval_examples(
    sessions: Sessions, mode: TargetMode = "last", max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for evaluation.

    ``last`` (the paper's task): input is the session without its final item, the target is the
    final item, shape (B,). ``rest``: the session is cut in half (at ``max(1, n // 2)``); the
    relevant set is every item after the cut, shape (B, R) padded with 0.
    """
    if mode == "last":
        inputs = [s[:-1] for s in sessions.items]
        targets = torch.tensor([int(s[-1]) for s in sessions.items], dtype=torch.long)
    elif mode == "rest":
        cuts = [max(1, len(s) // 2) for s in sessions.items]
        inputs = [s[:c] for s, c in zip(sessions.items, cuts)]
        targets = left_pad([s[c:] for s, c in zip(sessions.items, cuts)])
    else:
        raise ValueError(f"unknown target mode {mode!r}: use 'last' or 'rest'")
    return left_pad(inputs, max_len), targets


def training_windows(sessions: Sessions, max_len: int) -> Sessions:
    """Sessions longer than ``max_len + 1`` cut into consecutive windows of ``max_len + 1`` items.

    Windows end at the last item, then every ``max_len`` items back (the oldest may be shorter;
    a single leftover item is dropped: it is no target), so every target of the session is
    trained on exactly once, with the items of its window as context, instead of only the
    latest ``max_len`` (long user histories such as MovieLens). Shorter sessions are kept
    as they are, so data already cut to ``max_len`` is unchanged.
    """
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    items: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    for its, acts in zip(sessions.items, sessions.actions):
        for end in range(len(its), 1, -max_len):
            start = max(end - max_len - 1, 0)
            items.append(its[start:end])
            actions.append(acts[start:end])
            if len(its) <= max_len + 1:
                break
    return Sessions(items, actions)


def train_batches(
    sessions: Sessions,
    batch_size: int,
    generator: torch.Generator,
    max_len: int | None = None,
    bucket: int = 50,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled next-item batches: inputs ``s[:-1]`` and targets ``s[1:]``, both (B, L), 0 = no target.

    Sessions are shuffled, then sorted by length within windows of ``bucket`` batches, and the
    batches are shuffled again: each batch is padded only to its own longest session, so the
    heavy tail of session lengths costs little, while the order stays random and seeded.
    """
    order = torch.randperm(len(sessions), generator=generator).tolist()
    window = batch_size * bucket
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: len(sessions.items[i]))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    for b in torch.randperm(len(batches), generator=generator).tolist():
        rows = [sessions.items[i] for i in batches[b]]
        length = max(len(s) for s in rows) - 1
        if max_len is not None:
            length = min(length, max_len)
        yield left_pad([s[:-1] for s in rows], length), left_pad([s[1:] for s in rows], length)
