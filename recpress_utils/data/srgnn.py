"""SR-GNN's session benchmarks (Diginetica, YooChoose 1/64): read the published splits, or rebuild them.

SR-GNN (Wu et al., AAAI 2019) and its successors (GCE-GNN, ...) all report on one preprocessed
split per dataset, shipped as two Python pickles per folder:

- ``all_train_seq.txt[.gz]``: the training sessions, a list of lists of 1-based int item ids,
  oldest session first;
- ``test.txt[.gz]``: a tuple ``(prefixes, targets)``, every prefix of every test session with
  the item that followed it.

Published numbers are comparable only on exactly these splits, so :func:`load_split` reads them
as distributed. A pickle from the web can run code when loaded, so it is read with an unpickler
that refuses every global (no class, no function can be reached, hence none can be called) and
the result must then have exactly the shape above: lists, tuples and ints, nothing else.

Users who hold the original downloads rebuild the split with :func:`preprocess_raw`, which
repeats SR-GNN's published ``datasets/preprocess.py`` step by step (vectorised), and
:func:`write_split`, which writes the same two pickles so that :func:`load_split` serves both
routes. On the full raw files (Diginetica's ``train-item-views.csv``, YooChoose's
``yoochoose-clicks.dat`` with ``--fraction 64``) the result must match the published counts in
the table of ``shared/data/README.md``: Diginetica 186,670 training sessions / 906,140 clicks /
43,097 items / 60,858 test pairs; YooChoose 1/64 116,167 / 486,026 / 37,483 items (17,376 in
training, 412 test targets never in training) / 55,898 test pairs.

CLI::

    python -m recpress_utils.data.srgnn --raw train-item-views.csv --format diginetica --out DIR
    python -m recpress_utils.data.srgnn --raw yoochoose-clicks.dat --format yoochoose --fraction 64 --out DIR
"""

from __future__ import annotations

import argparse
import gzip
import json
import pickle
from dataclasses import asdict, dataclass
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import NoReturn, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from recpress_utils.io import atomic_path

TRAIN_FILE = "all_train_seq.txt"
TEST_FILE = "test.txt"

#: Raw formats and how many days at the end of the data SR-GNN holds out as the test set.
TEST_DAYS: dict[str, int] = {"diginetica": 7, "yoochoose": 1}

#: SR-GNN drops items seen fewer times than this (counted after dropping length-1 sessions).
MIN_ITEM_SUPPORT = 5

_DAY_S = 86_400
_PICKLE_PROTOCOL = 4  # readable by SR-GNN's own Python 3 code


class SrgnnDataError(ValueError):
    """A file that cannot be used as (part of) an SR-GNN split; the message names the file."""


# --------------------------------------------------------------------------- the split


@dataclass(frozen=True)
class SplitCounts:
    """The figures the README table publishes for each split, to check a split against it."""

    train_sessions: int
    train_clicks: int
    test_pairs: int
    train_items: int  # distinct items in the training sessions
    unseen_test_targets: int  # test pairs whose target never occurs in the training sessions


@dataclass(frozen=True, eq=False)  # eq would compare lists of arrays
class SessionSplit:
    """One SR-GNN split: training sessions, test (prefix, target) pairs and the id space to rank.

    Item ids are 1-based; 0 is left free for padding. Models rank every item of the id space
    (``1 .. n_items - 1``), as SR-GNN does, including ids that never occur in training (the
    YooChoose 1/64 split keeps the ids of the full training set, so it has many).
    """

    train: list[np.ndarray]
    test_prefixes: list[np.ndarray]
    test_targets: np.ndarray

    @cached_property
    def n_items(self) -> int:
        """Largest item id over training and test, plus one (for the padding id 0)."""
        return int(max(_flat(self.train).max(), _flat(self.test_prefixes).max(), self.test_targets.max())) + 1

    @cached_property
    def counts(self) -> SplitCounts:
        """Counts comparable with the README table."""
        train_items = np.unique(_flat(self.train))
        return SplitCounts(
            train_sessions=len(self.train),
            train_clicks=int(sum(map(len, self.train))),
            test_pairs=len(self.test_targets),
            train_items=len(train_items),
            unseen_test_targets=int((~np.isin(self.test_targets, train_items)).sum()),
        )


@dataclass(frozen=True, eq=False)
class ValidationSplit:
    """Training sessions for early stopping: the older ones to fit, pairs of the newest to validate."""

    train: list[np.ndarray]
    prefixes: list[np.ndarray]
    targets: np.ndarray


def _flat(sessions: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate(sessions) if len(sessions) else np.empty(0, np.int64)


def session_pairs(sessions: Sequence[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Every (prefix, next item) pair of ``sessions``, in SR-GNN's order.

    SR-GNN lists a session's pairs from the longest prefix to the shortest (``[a, b, c]`` gives
    ``([a, b], c)`` then ``([a], b)``); keeping that order keeps the pairs aligned with the
    published ``test.txt``. Prefixes are read-only views into one array.
    """
    lengths = np.fromiter(map(len, sessions), dtype=np.int64, count=len(sessions))
    n_pairs = np.maximum(lengths - 1, 0)
    flat = _flat(sessions)
    flat.flags.writeable = False
    starts = np.repeat(np.cumsum(lengths) - lengths, n_pairs)
    # the j-th pair of a session of length L has a prefix of length L-1-j
    j = np.arange(n_pairs.sum()) - np.repeat(np.cumsum(n_pairs) - n_pairs, n_pairs)
    ends = starts + np.repeat(n_pairs, n_pairs) - j
    return [flat[a:b] for a, b in zip(starts.tolist(), ends.tolist())], flat[ends]


def validation_split(train: Sequence[np.ndarray], valid_frac: float = 0.1) -> ValidationSplit:
    """Hold out the most recent ``valid_frac`` of the training sessions for early stopping.

    The published test set must not steer training, so model selection needs its own split.
    ``train`` is in time order (oldest first, as SR-GNN writes it), so the last
    ``round(len(train) * valid_frac)`` sessions are the most recent; every prefix of each is a
    validation pair, the same way the test pairs are made. Raises ValueError if that leaves no
    validation or no training session.
    """
    n_valid = round(len(train) * valid_frac)
    if not 0 < n_valid < len(train):
        raise ValueError(
            f"valid_frac={valid_frac} of {len(train)} training sessions gives {n_valid} validation "
            "sessions; need at least one for validation and one for training"
        )
    prefixes, targets = session_pairs(train[-n_valid:])
    return ValidationSplit(train=list(train[:-n_valid]), prefixes=prefixes, targets=targets)


# --------------------------------------------------------------------------- reading the pickles


class _NoGlobalsUnpickler(pickle.Unpickler):
    """Refuses every global, so no class or function can be reached and hence none can be called.

    Without globals a pickle can still build built-in containers and scalars (dicts, strings,
    floats...); :func:`load_split` checks the shape afterwards and admits only lists, tuples and ints.
    """

    def find_class(self, module: str, name: str) -> NoReturn:
        raise pickle.UnpicklingError(f"refused global {module}.{name}: only lists, tuples and ints are allowed")


def locate_file(folder: Path, name: str) -> Path:
    """``folder/name`` or ``folder/name.gz``; exactly one must exist, so it is clear which is read."""
    found = [p for p in (folder / name, folder / f"{name}.gz") if p.is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} holds neither {name} nor {name}.gz")
    if len(found) > 1:
        raise SrgnnDataError(f"{folder} holds both {name} and {name}.gz; keep one so that it is clear which is read")
    return found[0]


def _unpickle(path: Path) -> object:
    """Load ``path`` (gzipped if it ends in .gz) with the no-globals unpickler; any failure names the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return _NoGlobalsUnpickler(fh).load()
    except Exception as err:  # noqa: BLE001 - truncated gzip, bad pickle, refused global: all mean unusable
        raise SrgnnDataError(f"{path}: not a readable SR-GNN pickle ({type(err).__name__}: {err})") from err


def _ids(values: list, path: Path, what: str) -> np.ndarray:
    """``values`` as int64 item ids, refusing anything but ints >= 1 (bools and floats included)."""
    kinds = {type(v) for v in values} - {int}
    if kinds:
        raise SrgnnDataError(f"{path}: {what} hold {_names(kinds)}, not only ints")
    try:
        ids = np.array(values, dtype=np.int64)
    except OverflowError as err:
        raise SrgnnDataError(f"{path}: {what} hold an item id beyond int64") from err
    if ids.size and ids.min() < 1:
        raise SrgnnDataError(f"{path}: {what} hold item id {ids.min()}; ids are 1-based (0 is padding)")
    return ids


def _sequences(obj: object, path: Path, what: str) -> list[np.ndarray]:
    """A non-empty list of non-empty lists of item ids, as int64 arrays."""
    if type(obj) is not list:
        raise SrgnnDataError(f"{path}: {what} must be a list of lists of ints, got a {type(obj).__name__}")
    kinds = {type(s) for s in obj} - {list}
    if kinds:
        raise SrgnnDataError(f"{path}: {what} must be lists of ints, found {_names(kinds)}")
    if not obj:
        raise SrgnnDataError(f"{path}: {what} is empty")
    lengths = np.fromiter(map(len, obj), dtype=np.int64, count=len(obj))
    if (lengths == 0).any():
        raise SrgnnDataError(f"{path}: {what} #{int(np.argmin(lengths))} is empty")
    flat = _ids(list(chain.from_iterable(obj)), path, what)
    return np.split(flat, np.cumsum(lengths)[:-1])


def _names(kinds: set[type]) -> str:
    return ", ".join(sorted(k.__name__ for k in kinds))


def _read_train(path: Path) -> list[np.ndarray]:
    return _sequences(_unpickle(path), path, "training sessions")


def _read_test(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    obj = _unpickle(path)
    if type(obj) is not tuple or len(obj) != 2 or type(obj[1]) is not list:
        shape = f"a {type(obj).__name__}" + (f" of {len(obj)}" if isinstance(obj, (tuple, list)) else "")
        raise SrgnnDataError(f"{path}: expected a tuple (prefixes, targets) of two lists, got {shape}")
    prefixes, targets = obj
    if type(prefixes) is list and len(prefixes) != len(targets):
        raise SrgnnDataError(f"{path}: {len(prefixes)} prefixes but {len(targets)} targets")
    return _sequences(prefixes, path, "test prefixes"), _ids(targets, path, "test targets")


def load_split(folder: Path) -> SessionSplit:
    """Read one SR-GNN split folder (``all_train_seq.txt[.gz]`` and ``test.txt[.gz]``), validated.

    Raises FileNotFoundError for a missing folder or file and :class:`SrgnnDataError` (a
    ValueError naming the file) for anything unusable: a truncated or corrupt file, a pickle
    that asks for any global (i.e. would run code), the wrong shape, an id that is not an int
    >= 1, or an empty training or test set.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"SR-GNN split folder {folder} does not exist")
    train = _read_train(locate_file(folder, TRAIN_FILE))
    prefixes, targets = _read_test(locate_file(folder, TEST_FILE))
    return SessionSplit(train=train, test_prefixes=prefixes, test_targets=targets)


def write_split(split: SessionSplit, out_dir: Path) -> None:
    """Write ``split`` as SR-GNN does (plain pickles of lists of ints), each file atomically.

    The layout is the published one, so :func:`load_split` and SR-GNN-family code read it.
    """
    out_dir = Path(out_dir)
    test = ([p.tolist() for p in split.test_prefixes], split.test_targets.tolist())
    for name, obj in ((TRAIN_FILE, [s.tolist() for s in split.train]), (TEST_FILE, test)):
        with atomic_path(out_dir / name) as tmp, open(tmp, "wb") as fh:
            pickle.dump(obj, fh, protocol=_PICKLE_PROTOCOL)


# --------------------------------------------------------------------------- the raw files


def read_raw_clicks(path: Path, fmt: str) -> pd.DataFrame:
    """Read a raw click log into ``row, session, item, time, order`` (int64), in file order.

    ``time`` is the click's date in unix seconds as SR-GNN parses it: Diginetica's
    ``eventdate`` at midnight, YooChoose's timestamp truncated to the second. ``order`` sorts
    the clicks of a session: Diginetica's ``timeframe``, YooChoose's file position. Times are
    UTC where SR-GNN used the local time zone; only differences of whole days are used, so the
    split is the same wherever no daylight-saving change falls inside the test window.
    """
    path = Path(path)
    if fmt not in TEST_DAYS:
        raise ValueError(f"unknown raw format {fmt!r}; expected one of {sorted(TEST_DAYS)}")
    if not path.is_file():
        raise FileNotFoundError(f"raw {fmt} file {path} does not exist")
    try:
        table = _read_diginetica(path) if fmt == "diginetica" else _read_yoochoose(path)
    except (pa.ArrowException, OSError) as err:
        raise SrgnnDataError(f"{path}: not a raw {fmt} click log ({err})") from err
    if table.num_rows == 0:
        raise SrgnnDataError(f"{path}: no clicks")
    frame = pd.DataFrame({
        "row": np.arange(table.num_rows, dtype=np.int64),
        "session": table.column("session").to_numpy(),
        "item": table.column("item").to_numpy(),
        "time": table.column("time").cast(pa.int64()).to_numpy(),  # timestamp[s] -> seconds
    })
    frame["order"] = table.column("order").to_numpy() if "order" in table.column_names else frame["row"]
    return frame


def _read_diginetica(path: Path) -> pa.Table:
    """``session_id;user_id;item_id;timeframe;eventdate`` with a header line."""
    table = pacsv.read_csv(
        path,
        parse_options=pacsv.ParseOptions(delimiter=";"),
        convert_options=pacsv.ConvertOptions(
            include_columns=["session_id", "item_id", "eventdate", "timeframe"],
            column_types={"session_id": pa.int64(), "item_id": pa.int64(), "timeframe": pa.int64(),
                          "eventdate": pa.timestamp("s")},
        ),
    )
    return table.rename_columns(["session", "item", "time", "order"])


def _read_yoochoose(path: Path) -> pa.Table:
    """``session,timestamp,item,category``; no header in the original, one tolerated (SR-GNN's code wants one)."""
    names = ["session", "timestamp", "item", "category"]
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=_header_lines(path)),
        convert_options=pacsv.ConvertOptions(
            include_columns=["session", "item", "timestamp"],
            column_types={"session": pa.int64(), "item": pa.int64(), "timestamp": pa.timestamp("ms", tz="UTC")},
        ),
    )
    seconds = table.column("timestamp").cast(pa.int64()).to_numpy() // 1000  # SR-GNN parses [:19]
    return pa.table({"session": table.column("session"), "item": table.column("item"),
                     "time": pa.array(seconds, pa.int64())})


def _header_lines(path: Path) -> int:
    """1 if the first line is a header (its first field is not a session number), else 0."""
    with pa.input_stream(str(path), compression="detect") as stream:
        first = stream.read(1 << 12).split(b"\n", 1)[0].split(b",", 1)[0].strip()
    return 0 if first.isdigit() else 1


def preprocess_raw(path: Path, fmt: str, fraction: int = 1) -> SessionSplit:
    """Build SR-GNN's split from a raw click log, exactly as SR-GNN's ``preprocess.py`` does.

    Steps: a session's clicks in file order (Diginetica: stably sorted by ``timeframe``), its
    date that of its last line in the file; drop sessions of one click; drop items seen fewer
    than :data:`MIN_ITEM_SUPPORT` times, then sessions left with fewer than 2 clicks; split
    at (last date - ``TEST_DAYS[fmt]`` days): sessions strictly before train, strictly after
    test (sessions exactly at the split date are in neither, as in SR-GNN); training sessions
    sorted by date (ties: first appearance in the file) and items renumbered 1.. in order of
    first appearance there; test items unknown to training dropped, then test sessions shorter
    than 2; every prefix of a test session a pair. ``fraction`` > 1 keeps the most recent
    1/``fraction`` of training (see :func:`recent_fraction`) without renumbering, as SR-GNN
    made YooChoose 1/4 and 1/64; the test set is the same for every fraction.
    """
    raw = read_raw_clicks(path, fmt)
    sessions = _session_table(raw)
    clicks = _drop_rare(_ordered_within_sessions(raw))
    train_ids, test_ids = _split_by_date(sessions.loc[clicks["session"].unique()], TEST_DAYS[fmt])
    train_clicks = _in_session_order(clicks, train_ids)
    codes, uniques = pd.factorize(train_clicks["item"], sort=False)  # first appearance order
    new_id = pd.Series(np.arange(1, len(uniques) + 1, dtype=np.int64), index=uniques)
    test_clicks = _in_session_order(clicks, test_ids)
    test_clicks = test_clicks.assign(item=test_clicks["item"].map(new_id)).dropna(subset=["item"])
    test_clicks = test_clicks[test_clicks.groupby("session")["item"].transform("size") >= 2]
    train = _as_arrays(train_clicks["session"], codes.astype(np.int64) + 1)
    test = _as_arrays(test_clicks["session"], test_clicks["item"].astype(np.int64).to_numpy())
    if not train or not test:
        raise SrgnnDataError(f"{path}: SR-GNN's preprocessing leaves {len(train)} training and "
                             f"{len(test)} test sessions; both must be non-empty")
    prefixes, targets = session_pairs(test)
    return SessionSplit(train=recent_fraction(train, fraction), test_prefixes=prefixes, test_targets=targets)


def _ordered_within_sessions(clicks: pd.DataFrame) -> pd.DataFrame:
    """Group the clicks by session, each session's clicks stably sorted by ``order``."""
    return clicks.sort_values(["session", "order", "row"], kind="stable", ignore_index=True)


def _session_table(raw: pd.DataFrame) -> pd.DataFrame:
    """Per session of ``raw`` (in file order): ``date``, the time of its last line, as SR-GNN records
    it, and its ``first`` line, which breaks ties of date as SR-GNN's dict order does."""
    return pd.DataFrame({
        "date": raw.drop_duplicates("session", keep="last").set_index("session")["time"],
        "first": raw.drop_duplicates("session", keep="first").set_index("session")["row"],
    })


def _drop_rare(clicks: pd.DataFrame) -> pd.DataFrame:
    """Drop one-click sessions, then items seen < MIN_ITEM_SUPPORT times, then sessions left < 2 clicks."""
    clicks = clicks[clicks.groupby("session")["item"].transform("size") > 1]
    clicks = clicks[clicks.groupby("item")["item"].transform("size") >= MIN_ITEM_SUPPORT]
    return clicks[clicks.groupby("session")["item"].transform("size") >= 2]


def _split_by_date(sessions: pd.DataFrame, test_days: int) -> tuple[pd.Index, pd.Index]:
    """Session ids before / after (last date - ``test_days``), each sorted by (date, first line)."""
    split = sessions["date"].max() - test_days * _DAY_S
    ordered = sessions.sort_values(["date", "first"])
    return ordered.index[ordered["date"] < split], ordered.index[ordered["date"] > split]


def _in_session_order(clicks: pd.DataFrame, session_ids: pd.Index) -> pd.DataFrame:
    """The clicks of ``session_ids``, sessions in that order, each session's clicks in its own order."""
    rank = pd.Series(np.arange(len(session_ids)), index=session_ids)
    chosen = clicks[clicks["session"].isin(session_ids)]
    return chosen.iloc[np.argsort(chosen["session"].map(rank).to_numpy(), kind="stable")]


def _as_arrays(session: pd.Series, items: np.ndarray) -> list[np.ndarray]:
    """Split ``items`` into one array per run of equal ``session`` values."""
    if not len(items):
        return []
    values = session.to_numpy()
    breaks = np.flatnonzero(values[1:] != values[:-1]) + 1
    return np.split(np.asarray(items, dtype=np.int64), breaks)


def recent_fraction(train: list[np.ndarray], fraction: int) -> list[np.ndarray]:
    """The most recent 1/``fraction`` of training, cut exactly where SR-GNN cuts it.

    SR-GNN counts *pairs*, not sessions: k = (number of training pairs) // fraction, and keeps
    every session from the one holding the k-th pair from the end (so that session is kept
    whole). Item ids are not renumbered, which is why YooChoose 1/64 keeps the id space of the
    full training set. With k = 0 Python's ``[-0:]`` keeps everything; so does this.
    """
    if fraction < 1:
        raise ValueError(f"fraction must be >= 1, got {fraction}")
    n_pairs = np.fromiter((len(s) - 1 for s in train), dtype=np.int64, count=len(train))
    k = int(n_pairs.sum()) // fraction
    if k == 0:
        return list(train)
    start = int(np.searchsorted(np.cumsum(n_pairs), n_pairs.sum() - k, side="right"))
    return list(train[start:])


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: preprocess a raw click log the SR-GNN way, write the split, print its counts as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--raw", type=Path, required=True, help="train-item-views.csv or yoochoose-clicks.dat")
    ap.add_argument("--format", choices=sorted(TEST_DAYS), required=True, help="layout of --raw")
    ap.add_argument("--fraction", type=int, default=1,
                    help="keep the most recent 1/FRACTION of training, as SR-GNN (64 for yoochoose1_64)")
    ap.add_argument("--out", type=Path, required=True, help="folder to write all_train_seq.txt and test.txt into")
    args = ap.parse_args(argv)
    split = preprocess_raw(args.raw, args.format, args.fraction)
    write_split(split, args.out)
    print(json.dumps({"out": str(args.out), "n_items": split.n_items, **asdict(split.counts)}, sort_keys=True))


if __name__ == "__main__":
    main()
