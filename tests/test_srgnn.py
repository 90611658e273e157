"""SR-GNN splits: the safe pickle reader, its errors, the pair order, and the raw-file preprocessing.

The real splits and raw samples live in ``shared/data`` beside the repository (or wherever
RECPRESS_SHARED_DATA points); tests that need them skip when it is absent. The preprocessing is
checked three ways: a hand-made toy whose output is written out literally here, the raw samples
against a plain-loop restatement of SR-GNN's ``preprocess.py`` (dicts and lists, no pandas), and
the sample's id space against the ``n_node = 310`` that SR-GNN's own ``main.py`` hard-codes.
"""

from __future__ import annotations

import calendar
import gzip
import json
import os
import pickle
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from recpress_utils.data import srgnn
from recpress_utils.paths import REPO_ROOT


def shared_data() -> Path:
    """RECPRESS_SHARED_DATA if set, else ``shared/data`` beside the repository."""
    env = os.environ.get("RECPRESS_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def shared(*parts: str) -> Path:
    path = shared_data().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    return path


def as_lists(arrays) -> list[list[int]]:
    return [a.tolist() for a in arrays]


def write_pickle(path: Path, obj: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as fh:
        pickle.dump(obj, fh)
    return path


def make_split_dir(d: Path, train: object = None, test: object = None, gz: bool = False) -> Path:
    """A split folder holding ``train`` and ``test`` as pickles (a small valid split by default)."""
    suffix = ".gz" if gz else ""
    train = [[1, 2], [2, 3, 1]] if train is None else train
    test = ([[1], [2, 3]], [2, 1]) if test is None else test
    write_pickle(d / f"{srgnn.TRAIN_FILE}{suffix}", train)
    write_pickle(d / f"{srgnn.TEST_FILE}{suffix}", test)
    return d


# --------------------------------------------------------------------------- the real splits


@pytest.mark.parametrize("folder, expected, n_items", [
    ("diginetica", dict(train_sessions=186_670, train_clicks=906_140, test_pairs=60_858,
                        train_items=43_097, unseen_test_targets=0), 43_098),
    ("yoochoose1_64", dict(train_sessions=116_167, train_clicks=486_026, test_pairs=55_898,
                           train_items=17_376, unseen_test_targets=412), 37_484),
])
def test_real_split_counts_match_readme(folder, expected, n_items):
    split = srgnn.load_split(shared(folder))
    assert asdict(split.counts) == expected
    assert split.n_items == n_items  # README "items (id space)" + the padding id 0
    assert all(s.dtype == np.int64 for s in split.train[:10] + split.test_prefixes[:10])
    assert split.test_targets.dtype == np.int64


@pytest.mark.parametrize("folder", ["diginetica", "yoochoose1_64"])
def test_real_test_pairs_are_in_srgnn_pair_order(folder):
    """Regroup the published pairs into sessions; session_pairs must give them back in the same order."""
    split = srgnn.load_split(shared(folder))
    sessions, previous_len = [], 1
    for prefix, target in zip(split.test_prefixes, split.test_targets):
        if previous_len == 1:  # the shortest prefix closes a session; the next pair opens one
            sessions.append(np.append(prefix, target))
        previous_len = len(prefix)
    prefixes, targets = srgnn.session_pairs(sessions)
    assert np.array_equal(targets, split.test_targets)
    assert as_lists(prefixes) == as_lists(split.test_prefixes)


def test_real_truncated_gzip_is_refused(tmp_path):
    data = shared("diginetica", "test.txt.gz").read_bytes()
    make_split_dir(tmp_path)
    (tmp_path / srgnn.TEST_FILE).unlink()
    (tmp_path / "test.txt.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(srgnn.SrgnnDataError, match=r"test\.txt\.gz.*EOFError"):
        srgnn.load_split(tmp_path)


# --------------------------------------------------------------------------- reading: safety and errors


class RunsCode:
    """Pickles to "call ``func(arg)`` on load", as a hostile file would."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("payload, global_name", [
    (lambda m: RunsCode(os.system, f"touch {m}"), os.system.__module__ + ".system"),
    (lambda m: RunsCode(eval, f"open({str(m)!r}, 'w').close()"), "builtins.eval"),
])
@pytest.mark.parametrize("where", ["train", "test"])
def test_pickle_that_runs_code_is_refused_and_does_not_run(tmp_path, payload, global_name, where):
    marker = tmp_path / "pwned"
    hostile = payload(marker)
    pickle.loads(pickle.dumps(hostile))  # control: unrestricted, this pickle does run its code
    assert marker.exists()
    marker.unlink()
    d = tmp_path / "split"
    if where == "train":
        make_split_dir(d, train=[[1, 2], [3, hostile]], gz=True)
    else:
        make_split_dir(d, test=([[1], [2]], [hostile, 1]), gz=True)
    with pytest.raises(srgnn.SrgnnDataError, match=f"refused global {global_name}") as err:
        srgnn.load_split(d)
    assert ("all_train_seq.txt.gz" if where == "train" else "test.txt.gz") in str(err.value)
    assert not marker.exists()


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        srgnn.load_split(tmp_path / "nowhere")
    d = make_split_dir(tmp_path / "d")
    (d / srgnn.TEST_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"neither test\.txt nor test\.txt\.gz"):
        srgnn.load_split(d)
    (d / srgnn.TRAIN_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"all_train_seq\.txt"):
        srgnn.load_split(d)


def test_both_plain_and_gz_is_ambiguous(tmp_path):
    d = make_split_dir(tmp_path)
    make_split_dir(d, gz=True)
    with pytest.raises(srgnn.SrgnnDataError, match=r"both all_train_seq\.txt and all_train_seq\.txt\.gz"):
        srgnn.load_split(d)


def test_truncated_gzip_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    d = make_split_dir(tmp_path, train=[rng.integers(1, 10_000, 20).tolist() for _ in range(2_000)], gz=True)
    gz = d / "all_train_seq.txt.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with pytest.raises(srgnn.SrgnnDataError, match=r"all_train_seq\.txt\.gz: not a readable.*EOFError"):
        srgnn.load_split(d)


def test_not_gzip_and_not_pickle(tmp_path):
    d = make_split_dir(tmp_path)
    (d / "test.txt").write_text("1 2 3\n")
    with pytest.raises(srgnn.SrgnnDataError, match=r"test\.txt: not a readable SR-GNN pickle"):
        srgnn.load_split(d)
    (d / "test.txt").unlink()
    (d / "test.txt.gz").write_bytes(pickle.dumps(([[1]], [2])))  # a plain pickle named .gz
    with pytest.raises(srgnn.SrgnnDataError, match=r"test\.txt\.gz: not a readable SR-GNN pickle"):
        srgnn.load_split(d)


@pytest.mark.parametrize("train, message", [
    ({"a": [1, 2]}, "must be a list of lists of ints, got a dict"),
    ((1, 2), "must be a list of lists of ints, got a tuple"),
    ([(1, 2)], "must be lists of ints, found tuple"),
    ([[1, 2], "34"], "must be lists of ints, found str"),
    ([[1, 2.0]], "hold float, not only ints"),
    ([[1, True]], "hold bool, not only ints"),
    ([[1, None]], "hold NoneType, not only ints"),
    ([[1, "2"]], "hold str, not only ints"),
    ([[1, 2], [0, 3]], "item id 0; ids are 1-based"),
    ([[-4, 2]], "item id -4"),
    ([[1, 2**70]], "beyond int64"),
    ([], r"training sessions is empty"),
    ([[1, 2], []], r"training sessions #1 is empty"),
])
def test_training_file_of_wrong_shape_or_ids(tmp_path, train, message):
    d = make_split_dir(tmp_path, train=train)
    with pytest.raises(srgnn.SrgnnDataError, match=message) as err:
        srgnn.load_split(d)
    assert str(d / "all_train_seq.txt") in str(err.value)


@pytest.mark.parametrize("test, message", [
    ([[[1]], [2]], "expected a tuple .prefixes, targets. of two lists, got a list of 2"),
    (([[1]], [2], [3]), "got a tuple of 3"),
    (([[1]], (2,)), "got a tuple of 2"),
    (({1: 2}, [2]), "test prefixes must be a list of lists of ints, got a dict"),
    (([[1], [2]], [3]), "2 prefixes but 1 targets"),
    (([[1]], [0]), "test targets hold item id 0"),
    (([[1]], [2.5]), "test targets hold float"),
    (([[1, "x"]], [2]), "test prefixes hold str"),
    (([], []), "test prefixes is empty"),
    (([[]], [1]), "test prefixes #0 is empty"),
])
def test_test_file_of_wrong_shape_or_ids(tmp_path, test, message):
    d = make_split_dir(tmp_path, test=test)
    with pytest.raises(srgnn.SrgnnDataError, match=message) as err:
        srgnn.load_split(d)
    assert str(d / "test.txt") in str(err.value)


def test_errors_are_value_errors():
    assert issubclass(srgnn.SrgnnDataError, ValueError)


def test_small_split_loads_with_counts(tmp_path):
    d = make_split_dir(tmp_path, train=[[1, 2], [2, 3, 2]], test=([[4], [2, 7]], [1, 5]), gz=True)
    split = srgnn.load_split(d)
    assert as_lists(split.train) == [[1, 2], [2, 3, 2]]
    assert as_lists(split.test_prefixes) == [[4], [2, 7]]
    assert split.test_targets.tolist() == [1, 5]
    assert split.n_items == 8  # max id 7 is in a test prefix
    assert asdict(split.counts) == dict(train_sessions=2, train_clicks=5, test_pairs=2, train_items=3,
                                        unseen_test_targets=1)


# --------------------------------------------------------------------------- pairs and validation


def test_session_pairs_longest_prefix_first():
    prefixes, targets = srgnn.session_pairs([np.array([5, 6, 7, 8]), np.array([9]), np.array([1, 2])])
    assert as_lists(prefixes) == [[5, 6, 7], [5, 6], [5], [1]]
    assert targets.tolist() == [8, 7, 6, 2]
    assert not prefixes[0].flags.writeable
    empty_prefixes, empty_targets = srgnn.session_pairs([])
    assert empty_prefixes == [] and empty_targets.size == 0


def test_validation_split_takes_the_most_recent_sessions():
    train = [np.array(s) for s in ([1, 2], [3, 4], [5, 6, 7], [8, 9], [2, 4, 6, 8])]
    v = srgnn.validation_split(train, valid_frac=0.4)
    assert as_lists(v.train) == [[1, 2], [3, 4], [5, 6, 7]]
    assert as_lists(v.prefixes) == [[8], [2, 4, 6], [2, 4], [2]]
    assert v.targets.tolist() == [9, 8, 6, 4]
    assert len(srgnn.validation_split([np.array([1, 2])] * 20).train) == 18  # default 0.1


@pytest.mark.parametrize("frac", [0.0, 0.01, 1.0])
def test_validation_split_refuses_empty_sides(frac):
    with pytest.raises(ValueError, match="need at least one"):
        srgnn.validation_split([np.array([1, 2])] * 5, valid_frac=frac)


# --------------------------------------------------------------------------- raw files: literal toys

# Hand-made Diginetica log. What each session tests:
#   21: clicks out of timeframe order; same date as 3 but earlier in the file (ties: file order,
#       not session id). 10: two separate runs; its date is its *last* line's (05-06, which puts
#       it before 12), not its first (05-08). 4: one click, dropped, and its click does not count
#       towards item 60's support (60 has 5 clicks, 4 once length-1 sessions are gone: dropped).
#   99: one click: dropped. 9 and 13 fall below 2 clicks once 60/99 go. 5: exactly on the split
#   date (06-08 - 7 days): in neither set. 30 has exactly 5 clicks: kept. 50 never occurs in
#   training (only in 5 and the test): removed from test sessions, so 11 and 7 vanish.
DIGINETICA_TOY = """\
session_id;user_id;item_id;timeframe;eventdate
21;NA;10;30;2016-05-02
21;NA;20;10;2016-05-02
21;NA;30;20;2016-05-02
10;7;40;2;2016-05-08
2;NA;40;5;2016-05-01
2;NA;10;6;2016-05-01
3;NA;10;1;2016-05-02
3;NA;20;2;2016-05-02
3;NA;99;3;2016-05-02
4;NA;60;1;2016-05-03
9;NA;60;1;2016-05-05
9;NA;10;2;2016-05-05
10;7;20;1;2016-05-06
12;NA;30;1;2016-05-07
12;NA;40;2;2016-05-07
12;NA;30;3;2016-05-07
12;NA;60;4;2016-05-07
13;NA;60;1;2016-05-07
13;NA;60;2;2016-05-07
13;NA;40;3;2016-05-07
5;NA;20;1;2016-06-01
5;NA;50;2;2016-06-01
5;NA;30;3;2016-06-01
6;NA;10;1;2016-06-05
6;NA;50;2;2016-06-05
6;NA;20;3;2016-06-05
6;NA;30;4;2016-06-05
7;NA;50;1;2016-06-08
7;NA;40;2;2016-06-08
8;NA;20;1;2016-06-07
8;NA;10;2;2016-06-07
8;NA;40;3;2016-06-07
11;NA;50;1;2016-06-06
11;NA;50;2;2016-06-06
"""
# training in date order: 2 [40,10], 21 [20,30,10], 3 [10,20], 10 [20,40], 12 [30,40,30];
# renumbered by first appearance: 40->1, 10->2, 20->3, 30->4.
DIGINETICA_TRAIN = [[1, 2], [3, 4, 2], [2, 3], [3, 1], [4, 1, 4]]
# test in date order: 6 [10,(50),20,30] -> [2,3,4]; 11 [(50),(50)] gone; 8 [20,10,40] -> [3,2,1]; 7 [(50),40] gone.
DIGINETICA_PREFIXES = [[2, 3], [2], [3, 2], [3]]
DIGINETICA_TARGETS = [4, 3, 1, 2]

# Hand-made YooChoose log (no header; categories are numbers or "S", ignored). The last session
# ends 04-07 12:00:00.000, so the split is 04-06 12:00:00: session 6 (ends 11:59:59.999) trains,
# session 8 (ends 12:00:00.700, truncated to the second as SR-GNN does: exactly the split) is in
# neither set, session 7 (ends 12:00:01) tests. Session 9 comes first in the file but last by date.
YOOCHOOSE_TOY = """\
1,2014-04-01T10:00:00.000Z,5,0
1,2014-04-01T10:01:00.000Z,6,0
9,2014-04-07T11:00:00.000Z,5,S
9,2014-04-07T12:00:00.000Z,6,S
2,2014-04-02T09:00:00.000Z,6,0
2,2014-04-02T09:05:00.000Z,7,3
2,2014-04-02T09:06:00.000Z,5,3
3,2014-04-03T08:00:00.000Z,7,0
3,2014-04-03T08:00:30.123Z,7,0
6,2014-04-06T11:00:00.000Z,5,0
6,2014-04-06T11:59:59.999Z,7,0
8,2014-04-06T11:30:00.000Z,6,0
8,2014-04-06T12:00:00.700Z,5,0
7,2014-04-06T11:45:00.000Z,7,S
7,2014-04-06T12:00:01.000Z,6,S
"""
# 5->1, 6->2, 7->3
YOOCHOOSE_TRAIN = [[1, 2], [2, 3, 1], [3, 3], [1, 3]]
YOOCHOOSE_PREFIXES = [[3], [1]]
YOOCHOOSE_TARGETS = [2, 2]


def toy(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_diginetica_toy_literal(tmp_path):
    split = srgnn.preprocess_raw(toy(tmp_path, DIGINETICA_TOY, "train-item-views.csv"), "diginetica")
    assert as_lists(split.train) == DIGINETICA_TRAIN
    assert as_lists(split.test_prefixes) == DIGINETICA_PREFIXES
    assert split.test_targets.tolist() == DIGINETICA_TARGETS
    assert split.n_items == 5
    assert asdict(split.counts) == dict(train_sessions=5, train_clicks=12, test_pairs=4, train_items=4,
                                        unseen_test_targets=0)


@pytest.mark.parametrize("fraction, kept", [
    (1, DIGINETICA_TRAIN),
    # 7 training pairs; k = 7 // 2 = 3: the 3rd pair from the end is the first of session 10
    (2, DIGINETICA_TRAIN[3:]),
    (3, DIGINETICA_TRAIN[4:]),  # k = 2: the 2nd pair from the end is in session 12
    (7, DIGINETICA_TRAIN[4:]),  # k = 1: the last pair
    (8, DIGINETICA_TRAIN),  # k = 0: SR-GNN's tr_ids[-0] is tr_ids[0]: everything
])
def test_fraction_cut_follows_srgnn_and_keeps_ids(tmp_path, fraction, kept):
    split = srgnn.preprocess_raw(toy(tmp_path, DIGINETICA_TOY, "t.csv"), "diginetica", fraction)
    assert as_lists(split.train) == kept
    assert split.test_targets.tolist() == DIGINETICA_TARGETS  # the test set never changes
    assert split.n_items == 5  # ids are not renumbered after the cut


def test_yoochoose_toy_literal(tmp_path):
    split = srgnn.preprocess_raw(toy(tmp_path, YOOCHOOSE_TOY, "yoochoose-clicks.dat"), "yoochoose")
    assert as_lists(split.train) == YOOCHOOSE_TRAIN
    assert as_lists(split.test_prefixes) == YOOCHOOSE_PREFIXES
    assert split.test_targets.tolist() == YOOCHOOSE_TARGETS


def test_yoochoose_header_line_tolerated(tmp_path):
    """SR-GNN's own script reads the file with a header it names; the original has none. Both work."""
    with_header = toy(tmp_path, "session_id,timestamp,item_id,category\n" + YOOCHOOSE_TOY, "h.dat")
    split = srgnn.preprocess_raw(with_header, "yoochoose")
    assert as_lists(split.train) == YOOCHOOSE_TRAIN


def test_raw_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        srgnn.preprocess_raw(tmp_path / "missing.csv", "diginetica")
    with pytest.raises(ValueError, match="unknown raw format 'tmall'"):
        srgnn.preprocess_raw(toy(tmp_path, DIGINETICA_TOY, "t.csv"), "tmall")
    with pytest.raises(srgnn.SrgnnDataError, match=r"y\.dat: not a raw diginetica click log"):
        srgnn.preprocess_raw(toy(tmp_path, YOOCHOOSE_TOY, "y.dat"), "diginetica")
    with pytest.raises(srgnn.SrgnnDataError, match=r"d\.csv: not a raw yoochoose click log"):
        srgnn.preprocess_raw(toy(tmp_path, DIGINETICA_TOY, "d.csv"), "yoochoose")
    header_only = toy(tmp_path, DIGINETICA_TOY.splitlines()[0] + "\n", "h.csv")
    with pytest.raises(srgnn.SrgnnDataError, match=r"h\.csv: no clicks"):
        srgnn.preprocess_raw(header_only, "diginetica")
    one_day = toy(tmp_path, "".join(f"{s},2014-04-01T10:0{i}:00Z,{s % 2 + 1},0\n" for s in range(1, 6)
                                    for i in range(2)), "one.dat")
    with pytest.raises(srgnn.SrgnnDataError, match=r"one\.dat: .* leaves 0 training"):
        srgnn.preprocess_raw(one_day, "yoochoose")


def test_fraction_must_be_positive():
    with pytest.raises(ValueError, match="fraction must be >= 1"):
        srgnn.recent_fraction([np.array([1, 2])], 0)


# --------------------------------------------------------------------------- raw samples vs a plain restatement


def reference_preprocess(path: Path, fmt: str, fraction: int = 1) -> tuple[list, list, list]:
    """SR-GNN's preprocess.py restated as plain loops over dicts and lists (UTC instead of local time)."""
    lines = path.read_text().splitlines()
    clicks: dict[str, list[tuple[int, str]]] = {}  # dict order = first appearance, as SR-GNN's
    date: dict[str, int] = {}
    for line in lines[1:] if fmt == "diginetica" else lines:
        if fmt == "diginetica":
            sess, _user, item, timeframe, day = line.split(";")
            key, when = int(timeframe), calendar.timegm(time.strptime(day, "%Y-%m-%d"))
        else:
            sess, stamp, item, _category = line.split(",")
            key, when = 0, calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        clicks.setdefault(sess, []).append((key, item))
        date[sess] = when  # the last line wins
    seqs = {s: [item for _, item in sorted(c, key=lambda kc: kc[0])] for s, c in clicks.items()}
    seqs = {s: q for s, q in seqs.items() if len(q) > 1}
    support = Counter(item for q in seqs.values() for item in q)
    seqs = {s: kept for s, q in seqs.items() if len(kept := [i for i in q if support[i] >= 5]) >= 2}
    split = max(date[s] for s in seqs) - srgnn.TEST_DAYS[fmt] * 86_400
    train = sorted((s for s in seqs if date[s] < split), key=date.__getitem__)
    test = sorted((s for s in seqs if date[s] > split), key=date.__getitem__)
    new_id: dict[str, int] = {}
    train_seqs = [[new_id.setdefault(i, len(new_id) + 1) for i in seqs[s]] for s in train]
    test_seqs = [q for s in test if len(q := [new_id[i] for i in seqs[s] if i in new_id]) >= 2]
    pairs = [(q[:k], q[k]) for q in test_seqs for k in range(len(q) - 1, 0, -1)]
    owner = [n for n, q in enumerate(train_seqs) for _ in range(len(q) - 1)]
    k = len(owner) // fraction
    return train_seqs[owner[-k] if k else 0:], [p for p, _ in pairs], [t for _, t in pairs]


SAMPLES = [("sample_train-item-views.csv", "diginetica"), ("sample_yoochoose.dat", "yoochoose")]


@pytest.mark.parametrize("name, fmt", SAMPLES)
@pytest.mark.parametrize("fraction", [1, 4, 64])
def test_raw_sample_matches_plain_restatement(name, fmt, fraction):
    path = shared("raw-samples", name)
    split = srgnn.preprocess_raw(path, fmt, fraction)
    train, prefixes, targets = reference_preprocess(path, fmt, fraction)
    assert len(train) > 0 and len(targets) > 0
    assert as_lists(split.train) == train
    assert as_lists(split.test_prefixes) == prefixes
    assert split.test_targets.tolist() == targets


def test_diginetica_sample_id_space_is_srgnns():
    """SR-GNN's main.py hard-codes n_node = 310 for the split it makes from this sample."""
    split = srgnn.preprocess_raw(shared("raw-samples", "sample_train-item-views.csv"), "diginetica")
    assert split.n_items == 310
    assert asdict(split.counts) == dict(train_sessions=469, train_clicks=1_674, test_pairs=99, train_items=309,
                                        unseen_test_targets=0)


def test_yoochoose_sample_counts():
    split = srgnn.preprocess_raw(shared("raw-samples", "sample_yoochoose.dat"), "yoochoose", 64)
    assert split.n_items == 91
    assert asdict(split.counts) == dict(train_sessions=3, train_clicks=8, test_pairs=51, train_items=3,
                                        unseen_test_targets=51)


# --------------------------------------------------------------------------- writing and the CLI


def test_write_then_load_round_trip(tmp_path):
    split = srgnn.preprocess_raw(toy(tmp_path, DIGINETICA_TOY, "t.csv"), "diginetica")
    out = tmp_path / "out"
    srgnn.write_split(split, out)
    assert sorted(p.name for p in out.iterdir()) == ["all_train_seq.txt", "test.txt"]
    with open(out / "all_train_seq.txt", "rb") as fh:  # our own file: plain lists of ints
        assert pickle.load(fh) == DIGINETICA_TRAIN
    with open(out / "test.txt", "rb") as fh:
        assert pickle.load(fh) == (DIGINETICA_PREFIXES, DIGINETICA_TARGETS)
    back = srgnn.load_split(out)
    assert as_lists(back.train) == DIGINETICA_TRAIN
    assert as_lists(back.test_prefixes) == DIGINETICA_PREFIXES
    assert back.counts == split.counts and back.n_items == split.n_items


def test_cli_main(tmp_path, capsys):
    raw = toy(tmp_path, YOOCHOOSE_TOY, "clicks.dat")
    srgnn.main(["--raw", str(raw), "--format", "yoochoose", "--fraction", "2", "--out", str(tmp_path / "o")])
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"out": str(tmp_path / "o"), "n_items": 4, "train_sessions": 2, "train_clicks": 4,
                       "test_pairs": 2, "train_items": 2, "unseen_test_targets": 2}
    assert as_lists(srgnn.load_split(tmp_path / "o").train) == YOOCHOOSE_TRAIN[2:]


def test_cli_as_module(tmp_path):
    raw = toy(tmp_path, DIGINETICA_TOY, "views.csv")
    proc = subprocess.run(
        [sys.executable, "-m", "recpress_utils.data.srgnn", "--raw", str(raw), "--format", "diginetica",
         "--out", str(tmp_path / "o")],
        capture_output=True, text=True, check=True, cwd=REPO_ROOT,
    )
    assert json.loads(proc.stdout)["test_pairs"] == 4
    assert as_lists(srgnn.load_split(tmp_path / "o").train) == DIGINETICA_TRAIN
