"""MovieLens-100k as a next-item dataset, converted to the REES46 event-CSV schema.

The project's loader reads every dataset in the REES46 schema, so rather than giving
MovieLens its own reader we convert it: each user's ratings ordered by time become one
session of ``view`` events, the movie is the product and its first genre the category.

The raw files come, with no manual step, from the GroupLens download or, where that
site cannot be reached (machines that only reach PyPI), from the copy that the
``recbole==1.2.1`` wheel on PyPI ships as RecBole "atomic files". Both hold the same
100,000 (user, item, timestamp) triples; :func:`load_ml100k_ratings` reads either layout
into one frame, so the CSV written from them is byte-identical.

CLI::

    python -m recpress_utils.data.movielens --out results/ml-100k/raw/events.csv --cache resources/ml-100k
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from recpress_utils.io import atomic_path
from recpress_utils.paths import repo_path

log = logging.getLogger("recpress_utils.data.movielens")  # same name under ``python -m``

#: The usual GroupLens download of MovieLens-100k.
ML100K_URL: str = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"

#: The PyPI wheel whose ``recbole/dataset_example/ml-100k/`` holds the same data.
RECBOLE_REQUIREMENT: str = "recbole==1.2.1"
RECBOLE_WHEEL_PREFIX: str = "recbole/dataset_example/ml-100k/"

#: Header of the REES46 events CSV, in order.
REES46_COLUMNS: tuple[str, ...] = (
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
)

#: ML-100k's genres in ``u.genre`` order. The RecBole copy has no genre table, so this
#: fixes the genre ids for it; a GroupLens ``u.genre`` is read and used as it is.
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

GROUPLENS_FILES: tuple[str, ...] = ("u.data", "u.item", "u.genre")
RECBOLE_FILES: tuple[str, ...] = ("ml-100k.inter", "ml-100k.item")  # ml-100k.user is optional
_RECBOLE_OPTIONAL: tuple[str, ...] = ("ml-100k.user",)

#: Cache sub-folders, one per layout, so a cache never mixes the two.
GROUPLENS_SUBDIR = "grouplens"
RECBOLE_SUBDIR = "recbole"

_PIP_TIMEOUT_S = 600.0


# --------------------------------------------------------------------------- fetching


def fetch_ml100k(cache_dir: Path, url: str = ML100K_URL, timeout: float = 10.0) -> Path:
    """Return a folder holding the raw ML-100k files, fetching them only if the cache lacks them.

    Tries the GroupLens zip first (the canonical source), then the ``recbole==1.2.1`` wheel
    from PyPI (the only route on machines whose network reaches PyPI alone). The returned
    folder has either layout; :func:`load_ml100k_ratings` reads both.

    Raises RuntimeError naming both failures when neither source works.
    """
    cache_dir = Path(cache_dir)
    cached = _cached_raw_dir(cache_dir)
    if cached is not None:
        log.info("ML-100k: using cached raw files in %s", cached)
        return cached

    try:
        raw = _download_grouplens(url, timeout, cache_dir / GROUPLENS_SUBDIR)
    except Exception as err:  # noqa: BLE001 - any failure means: try the fallback
        grouplens_err = err  # ``err`` itself is unbound once the except block ends
        log.info("ML-100k: GroupLens download failed (%r); falling back to the %s wheel from PyPI",
                 grouplens_err, RECBOLE_REQUIREMENT)
    else:
        log.info("ML-100k: source = GroupLens download %s -> %s", url, raw)
        return raw

    try:
        raw = _fetch_from_recbole_wheel(cache_dir)
    except Exception as wheel_err:  # noqa: BLE001
        raise RuntimeError(
            "could not get MovieLens-100k from either source: "
            f"GroupLens download {url} failed with {grouplens_err!r}; "
            f"PyPI wheel {RECBOLE_REQUIREMENT} failed with {wheel_err!r}"
        ) from wheel_err
    log.info("ML-100k: source = %s wheel from PyPI -> %s", RECBOLE_REQUIREMENT, raw)
    return raw


def _cached_raw_dir(cache_dir: Path) -> Path | None:
    """The cached raw folder if one is complete (GroupLens preferred), else None."""
    for sub, required in ((GROUPLENS_SUBDIR, GROUPLENS_FILES), (RECBOLE_SUBDIR, RECBOLE_FILES)):
        d = cache_dir / sub
        if all((d / name).is_file() for name in required):
            return d
    return None


def _download_grouplens(url: str, timeout: float, dest: Path) -> Path:
    """Download the GroupLens zip and extract ``u.data``, ``u.item``, ``u.genre`` into ``dest``."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - fixed https URL
        payload = resp.read()
    with zipfile.ZipFile(io.BytesIO(payload)) as zf:
        by_name = {Path(m).name: m for m in zf.namelist() if not m.endswith("/")}
        missing = [n for n in GROUPLENS_FILES if n not in by_name]
        if missing:
            raise ValueError(f"{url} lacks {missing}")
        for name in GROUPLENS_FILES:
            with atomic_path(dest / name) as tmp:
                tmp.write_bytes(zf.read(by_name[name]))
    return dest


def _fetch_from_recbole_wheel(cache_dir: Path) -> Path:
    """Extract the RecBole atomic files from the ``recbole`` wheel (cached, else ``pip download``)."""
    wheels = sorted(cache_dir.glob("recbole-1.2.1-*.whl"))
    if wheels:
        wheel = wheels[0]
        log.info("ML-100k: reusing cached wheel %s", wheel)
    else:
        with tempfile.TemporaryDirectory(prefix="recbole-wheel-") as tmpdir:
            downloaded = _pip_download_wheel(Path(tmpdir))
            wheel = cache_dir / downloaded.name
            with atomic_path(wheel) as tmp:
                shutil.copyfile(downloaded, tmp)
    return extract_recbole_wheel(wheel, cache_dir / RECBOLE_SUBDIR)


def _pip_download_wheel(dest_dir: Path) -> Path:
    """Run ``pip download --no-deps recbole==1.2.1`` into ``dest_dir``; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", RECBOLE_REQUIREMENT, "-d", str(dest_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"pip download exited {proc.returncode}: {' | '.join(tail)}")
    wheels = sorted(dest_dir.glob("recbole-*.whl"))
    if not wheels:
        raise RuntimeError(f"pip download left no recbole wheel in {dest_dir}")
    return wheels[0]


def extract_recbole_wheel(wheel: Path, dest: Path) -> Path:
    """Copy ``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}`` out of ``wheel`` into ``dest``.

    The wheel is a zip; the knowledge-graph files beside them (``.kg``, ``.link``) are not needed.
    """
    with zipfile.ZipFile(wheel) as zf:
        members = set(zf.namelist())
        missing = [n for n in RECBOLE_FILES if RECBOLE_WHEEL_PREFIX + n not in members]
        if missing:
            raise ValueError(f"{wheel} lacks {[RECBOLE_WHEEL_PREFIX + n for n in missing]}")
        for name in RECBOLE_FILES + _RECBOLE_OPTIONAL:
            if RECBOLE_WHEEL_PREFIX + name in members:
                with atomic_path(dest / name) as tmp:
                    tmp.write_bytes(zf.read(RECBOLE_WHEEL_PREFIX + name))
    return dest


# --------------------------------------------------------------------------- reading


def _genre_key(name: str) -> str:
    """Spelling-insensitive key: "Children's", "childrens", "Sci-Fi", "sci fi" all match."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


_CANONICAL_BY_KEY = {_genre_key(g): g for g in ML100K_GENRES}


def _display_genre(name: str) -> str:
    """The canonical ML-100k spelling of ``name`` when it is one of its genres, else ``name``."""
    return _CANONICAL_BY_KEY.get(_genre_key(name), name)


def load_ml100k_ratings(raw_dir: Path) -> pd.DataFrame:
    """Read the ratings of either raw layout into one frame, so both sources convert identically.

    Columns: ``user_id``, ``item_id`` (int64), ``rating`` (float64), ``timestamp`` (int64, unix
    seconds), ``genre_id`` (Int64: 1-based position of the movie's first genre in ``u.genre``
    order, <NA> if the movie has none) and ``genre`` (that genre's canonical name, "" if none).
    Rows are in file order.
    """
    raw_dir = Path(raw_dir)
    if all((raw_dir / n).is_file() for n in GROUPLENS_FILES):
        ratings, genres = _read_grouplens(raw_dir)
    elif all((raw_dir / n).is_file() for n in RECBOLE_FILES):
        ratings, genres = _read_recbole(raw_dir)
    else:
        raise FileNotFoundError(
            f"{raw_dir} holds neither GroupLens ({', '.join(GROUPLENS_FILES)}) "
            f"nor RecBole ({', '.join(RECBOLE_FILES)}) ML-100k files"
        )
    out = ratings.merge(genres, on="item_id", how="left", validate="many_to_one")
    out["genre_id"] = out["genre_id"].astype("Int64")
    out["genre"] = out["genre"].fillna("").astype(str)
    return out[["user_id", "item_id", "rating", "timestamp", "genre_id", "genre"]]


def _read_grouplens(raw_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    ratings = pd.read_csv(
        raw_dir / "u.data", sep="\t", header=None, names=["user_id", "item_id", "rating", "timestamp"],
        dtype={"user_id": "int64", "item_id": "int64", "rating": "float64", "timestamp": "int64"},
    )
    genre_table = pd.read_csv(
        raw_dir / "u.genre", sep="|", header=None, names=["name", "gid"], encoding="latin-1",
        dtype={"name": str, "gid": "int64"}, skip_blank_lines=True, quoting=csv.QUOTE_NONE,
    ).sort_values("gid")
    names = [_display_genre(n) for n in genre_table["name"]]
    items = pd.read_csv(
        raw_dir / "u.item", sep="|", header=None, encoding="latin-1", dtype=str,
        keep_default_na=False, quoting=csv.QUOTE_NONE,
    )
    if items.shape[1] < 1 + len(names):
        raise ValueError(f"u.item has {items.shape[1]} columns, fewer than 1 + {len(names)} genres")
    flags = items.iloc[:, -len(names):].apply(pd.to_numeric).to_numpy() > 0
    first = [int(row.argmax()) if row.any() else None for row in flags]
    genres = pd.DataFrame({
        "item_id": items.iloc[:, 0].astype("int64"),
        "genre_id": pd.array([None if i is None else i + 1 for i in first], dtype="Int64"),
        "genre": [None if i is None else names[i] for i in first],
    })
    return ratings, genres


def _read_atomic(path: Path) -> pd.DataFrame:
    """Read a RecBole atomic file: tab-separated, header ``name:type`` per column; types dropped."""
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE, encoding="utf-8")
    df.columns = [c.split(":", 1)[0] for c in df.columns]
    return df


def _read_recbole(raw_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    inter = _read_atomic(raw_dir / "ml-100k.inter")
    ratings = pd.DataFrame({
        "user_id": inter["user_id"].astype("int64"),
        "item_id": inter["item_id"].astype("int64"),
        "rating": inter["rating"].astype("float64"),
        # declared ``:float``; parse as float, then make sure no fraction is being dropped
        "timestamp": _to_int_seconds(inter["timestamp"]),
    })
    item = _read_atomic(raw_dir / "ml-100k.item")
    index_by_key = {_genre_key(g): i for i, g in enumerate(ML100K_GENRES)}
    gids: list[int | None] = []
    for tokens in item.get("class", pd.Series([""] * len(item))):
        idx = []
        for tok in tokens.split():
            i = index_by_key.get(_genre_key(tok))
            if i is None:
                log.warning("ML-100k (RecBole): unknown genre token %r ignored", tok)
            else:
                idx.append(i)
        gids.append(min(idx) if idx else None)  # "first" = earliest in u.genre order, as GroupLens
    genres = pd.DataFrame({
        "item_id": item["item_id"].astype("int64"),
        "genre_id": pd.array([None if i is None else i + 1 for i in gids], dtype="Int64"),
        "genre": [None if i is None else ML100K_GENRES[i] for i in gids],
    })
    return ratings, genres


def _to_int_seconds(s: pd.Series) -> pd.Series:
    f = s.astype("float64")
    if (f % 1 != 0).any():
        raise ValueError("non-integral timestamps in ml-100k.inter")
    return f.astype("int64")


# --------------------------------------------------------------------------- converting


def to_rees46_events(ratings: pd.DataFrame) -> pd.DataFrame:
    """Map ratings to REES46 rows: one ``view`` per rating, one session per user, deterministic order.

    Nothing is dropped; repeats are for the downstream preprocessing to collapse. A movie whose
    genre is "unknown" (ML-100k's own genre 0) keeps its category_id but gets an empty
    category_code, as REES46 leaves the code empty where it is not known.
    """
    df = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort").reset_index(drop=True)
    code = df["genre"].str.lower()
    code = code.where(code != "unknown", "")
    out = pd.DataFrame({
        "event_time": pd.to_datetime(df["timestamp"], unit="s", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "event_type": "view",
        "product_id": df["item_id"].astype("int64"),
        "category_id": df["genre_id"].astype("Int64"),
        "category_code": code,
        "brand": "",
        "price": "",
        "user_id": df["user_id"].astype("int64"),
        "user_session": df["user_id"].astype(str),
    })
    return out[list(REES46_COLUMNS)]


def write_events_csv(raw_dir: Path, out_path: Path) -> dict:
    """Convert the raw ML-100k files to a REES46-schema CSV, written atomically.

    Returns ``{"events", "users", "items"}`` counts so a caller can check the conversion.
    """
    events = to_rees46_events(load_ml100k_ratings(raw_dir))
    with atomic_path(out_path) as tmp:
        events.to_csv(tmp, index=False, na_rep="", lineterminator="\n")
    return {
        "events": int(len(events)),
        "users": int(events["user_id"].nunique()),
        "items": int(events["product_id"].nunique()),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: fetch (or reuse) the raw files and write the REES46 events CSV; print the counts."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=repo_path("results/ml-100k/raw/events.csv"),
                    help="events CSV to write (default: %(default)s)")
    ap.add_argument("--cache", type=Path, default=repo_path("resources/ml-100k"),
                    help="folder caching the raw files (default: %(default)s)")
    ap.add_argument("--url", default=ML100K_URL, help="GroupLens zip URL (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=10.0, help="download timeout, seconds")
    args = ap.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    raw = fetch_ml100k(args.cache, url=args.url, timeout=args.timeout)
    counts = write_events_csv(raw, args.out)
    log.info("ML-100k: wrote %s (%d events, %d users, %d items)", args.out,
             counts["events"], counts["users"], counts["items"])
    print(json.dumps({"out": str(args.out), "raw_dir": str(raw), **counts}, sort_keys=True))


if __name__ == "__main__":
    main()
