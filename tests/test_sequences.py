"""Padding and targets: the contract every model and metric relies on."""

from __future__ import annotations

import numpy as np
import torch

from recpress_utils.sequences import Sessions, eval_examples, left_pad, train_batches, training_windows


def _sessions(*seqs):
    return Sessions([np.array(s) for s in seqs], [np.zeros(len(s), np.int8) for s in seqs])


def test_left_pad_right_aligns_and_truncates_oldest():
    out = left_pad([np.array([1, 2, 3]), np.array([4])])
    assert out.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert left_pad([np.array([1, 2, 3, 4])], 2).tolist() == [[3, 4]]


def test_eval_last_never_shows_the_target():
    inputs, targets = eval_examples(_sessions([5, 6, 7], [8, 9]), "last")
    assert targets.tolist() == [7, 9]
    assert inputs.tolist() == [[5, 6], [0, 8]]


def test_eval_rest_cuts_in_half():
    inputs, targets = eval_examples(_sessions([1, 2, 3, 4, 5], [6, 7]), "rest")
    assert inputs.tolist() == [[1, 2], [0, 6]]
    assert targets.tolist() == [[3, 4, 5], [0, 0, 7]]


def test_train_batches_shift_by_one_and_cover_every_session_once():
    sess = _sessions([1, 2, 3], [4, 5], [6, 7, 8, 9])
    batches = list(train_batches(sess, 2, torch.Generator().manual_seed(0)))
    seen = []
    for inputs, targets in batches:
        assert inputs.shape == targets.shape
        for x, y in zip(inputs.tolist(), targets.tolist()):
            real = [(a, b) for a, b in zip(x, y) if b]
            seen.append(tuple(b for _, b in real))
            assert all(a != 0 for a, _ in real)
    assert sorted(seen) == sorted([(2, 3), (5,), (7, 8, 9)])


def test_train_batches_are_seeded():
    sess = _sessions(*[[i, i + 1] for i in range(1, 40)])
    a = [x.tolist() for x, _ in train_batches(sess, 8, torch.Generator().manual_seed(3))]
    b = [x.tolist() for x, _ in train_batches(sess, 8, torch.Generator().manual_seed(3))]
    c = [x.tolist() for x, _ in train_batches(sess, 8, torch.Generator().manual_seed(4))]
    assert a == b and a != c


def test_training_windows_train_every_target_once_with_its_window_as_context():
    rng = np.random.default_rng(0)
    items = [rng.permutation(np.arange(1, 200))[:n] for n in (1, 2, 5, 6, 7, 23, 120)]
    sessions = Sessions(items, [np.arange(len(s)) for s in items])
    for max_len in (1, 5, 50):
        windows = training_windows(sessions, max_len)
        assert all(2 <= len(w) <= max_len + 1 for w in windows.items)
        for w, a in zip(windows.items, windows.actions):
            assert len(w) == len(a)
        # every (context, target) pair of the original sessions, targets counted once each
        targets = sorted(int(t) for w in windows.items for t in w[1:])
        assert targets == sorted(int(t) for s in items for t in s[1:])
        # each session's windows are contiguous slices of it, latest first, overlapping by one
        for s in items:
            own = training_windows(Sessions([s], [np.arange(len(s))]), max_len).items
            end = len(s)
            for w in own:
                assert np.array_equal(s[end - len(w):end], w)
                end -= len(w) - 1


def test_training_windows_leave_short_sessions_unchanged():
    items = [np.array([1, 2, 3]), np.array([4, 5])]
    sessions = Sessions(items, [np.zeros(3), np.zeros(2)])
    windows = training_windows(sessions, 50)
    assert [w.tolist() for w in windows.items] == [[1, 2, 3], [4, 5]]


def test_load_sessions_cuts_rows_from_the_flat_column_exactly(tiny_prepared, tmp_path) -> None:
    """The vectorised reader gives exactly what one Python list per row gave, dtypes included, and
    an empty split gives no rows."""
    import numpy as np
    import pyarrow.parquet as pq

    from recpress_utils.sequences import load_sessions

    for split in ("train", "test"):
        got = load_sessions(tiny_prepared, split)
        table = pq.read_table(tiny_prepared / f"{split}.parquet", columns=["items", "actions"])
        for column, rows, dtype in (("items", got.items, np.int64), ("actions", got.actions, np.int8)):
            expected = [np.asarray(x, dtype=dtype) for x in table.column(column).to_pylist()]
            assert len(rows) == len(expected)
            assert all(a.dtype == dtype and np.array_equal(a, b) for a, b in zip(rows, expected))
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pq.read_table(tiny_prepared / "test.parquet").slice(0, 0), empty / "test.parquet")
    assert load_sessions(empty, "test").items == []
