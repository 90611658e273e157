"""Seeded synthetic e-commerce events in the REES46 CSV schema.

The replication runs without network access, so this generator is the pipeline's embedded
default dataset. It writes the exact REES46 columns and formats, and builds in the kinds of
structure a session recommender can learn, calibrated to the public REES46 October 2019
month (42.4M events, ~96% views, median session of 2-3 events) rather than tuned to make
any particular model win:

* long tail: categories, and items within a category, follow Zipf laws; brands are nested
  in categories; prices are log-normal around a per-category level;
* communities: a session starts in its user's persistent preferred category (or a popular
  one) and mostly stays there;
* first-order sequences: every item has a few seeded likely successors (mostly same
  category, often same brand, some from "complement" categories) that the next view
  follows with probability ``p_transition``; otherwise the next item is a refresh of the
  same item, a popular item of the current category, or a popular item overall;
* a view -> cart -> purchase funnel: a cart comes right after a view of the item, a
  purchase (or the rare remove_from_cart) right after the cart;
* log-normal session lengths with a heavy tail, heavy-tailed sessions per user.

Everything is drawn from one ``numpy.random.default_rng(seed)`` stream in a fixed order and
written with fixed formatting, so the same config gives a byte-identical CSV.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from recpress_utils.data.rees46 import REES46_COLUMNS
from recpress_utils.io import atomic_path
from recpress_utils.settings import Settings

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase", "remove_from_cart")

#: Category codes seen in the real REES46 October slice; synthetic categories reuse them so
#: the text looks like the real data (extra categories get a numbered ``.lineN`` suffix).
REAL_CATEGORY_CODES: tuple[str, ...] = (
    "accessories.bag", "apparel.shoes", "apparel.shoes.keds", "apparel.shoes.slipons",
    "apparel.sock", "appliances.environment.air_conditioner", "appliances.environment.air_heater",
    "appliances.environment.vacuum", "appliances.environment.water_heater",
    "appliances.kitchen.blender", "appliances.kitchen.coffee_machine",
    "appliances.kitchen.dishwasher", "appliances.kitchen.grill", "appliances.kitchen.kettle",
    "appliances.kitchen.meat_grinder", "appliances.kitchen.microwave", "appliances.kitchen.mixer",
    "appliances.kitchen.refrigerators", "appliances.kitchen.washer",
    "appliances.personal.hair_cutter", "appliances.sewing_machine", "auto.accessories.alarm",
    "auto.accessories.compressor", "auto.accessories.player", "auto.accessories.videoregister",
    "computers.components.videocards", "computers.desktop", "computers.notebook",
    "computers.peripherals.monitor", "construction.tools.drill", "construction.tools.pump",
    "construction.tools.welding", "electronics.audio.headphone", "electronics.audio.subwoofer",
    "electronics.camera.video", "electronics.clocks", "electronics.smartphone",
    "electronics.tablet", "electronics.telephone", "electronics.video.tv",
    "furniture.bathroom.toilet", "furniture.bedroom.bed", "furniture.kitchen.table",
    "furniture.living_room.cabinet", "furniture.living_room.chair", "furniture.living_room.sofa",
    "kids.skates", "kids.toys", "sport.trainer",
)

_CATEGORY_ID_BASE = 2053013550000000000  # real category ids are 19-digit numbers like this
_USER_ID_BASE = 510000000  # real user ids are 9-digit numbers around 5.1e8-5.6e8
_SYLLABLES: tuple[str, ...] = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")


@dataclass(frozen=True)
class SyntheticConfig(Settings):
    """Generator knobs. Defaults give a small dataset (~190k events) shaped like REES46."""

    KIND = "synthetic data"

    # size and time window
    n_items: int = 3000
    n_sessions: int = 40000
    n_users: int = 15000  # every user has at least one session, so n_users <= n_sessions
    n_categories: int = 40
    n_brands: int = 300  # each brand belongs to exactly one category
    days: int = 30
    start: str = "2019-10-01"
    seed: int = 42
    monthly: bool = False  # one CSV per month, drawn day by day in bounded memory (write_monthly_csvs)
    # popularity (Zipf exponents over popularity ranks)
    category_zipf: float = 1.0
    item_zipf: float = 1.0  # within a category
    brand_zipf: float = 1.0  # within a category
    user_activity_zipf: float = 0.5  # extra sessions per user
    # sequence structure
    p_repeat: float = 0.15  # next view is an immediate repeat (refresh) of the same item
    p_transition: float = 0.5  # otherwise, follow one of the item's successors
    successors_per_item: int = 4
    successor_same_category: float = 0.8  # else from one of the category's complements
    successor_same_brand: float = 0.5  # among same-category successors
    complements_per_category: int = 2
    p_stay_category: float = 0.85  # no transition: popular item of current category vs overall
    p_user_category: float = 0.7  # session starts in the user's preferred category
    # session shape (log-normal number of views) and event spacing
    session_length_median: float = 2.5
    session_length_sigma: float = 1.1
    max_session_length: int = 200  # views; funnel events come on top
    gap_median_seconds: float = 30.0
    gap_sigma: float = 1.2
    # funnel
    p_cart: float = 0.025  # per view
    p_purchase: float = 0.6  # per cart
    p_remove_from_cart: float = 0.1  # per cart not purchased
    # catalogue attributes
    price_sigma: float = 0.6  # log-price spread of items around their category level
    p_missing_brand: float = 0.14  # per item, as in the real slice
    p_missing_category_code: float = 0.35  # per category, as in the real slice

    def __post_init__(self) -> None:
        for name in ("n_items", "n_sessions", "n_users", "n_brands", "days",
                     "successors_per_item", "complements_per_category", "max_session_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.n_categories < 2:
            raise ValueError("n_categories must be >= 2 (complement categories need another one)")
        if not self.complements_per_category < self.n_categories:
            raise ValueError("complements_per_category must be < n_categories")
        if self.n_items < self.n_categories or self.n_brands < self.n_categories:
            raise ValueError("n_items and n_brands must be >= n_categories (none may be empty)")
        if self.n_users > self.n_sessions:
            raise ValueError("n_users must be <= n_sessions: every user has a session")
        for f in fields(self):
            if f.name.startswith(("p_", "successor_same_")) and not 0 <= getattr(self, f.name) <= 1:
                raise ValueError(f"{f.name} must be in [0, 1]")
            if f.name.endswith(("_zipf", "_sigma")) and getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must be >= 0")
        if self.session_length_median <= 0 or self.gap_median_seconds <= 0:
            raise ValueError("session_length_median and gap_median_seconds must be > 0")
        np.datetime64(self.start, "s")  # raises ValueError on a malformed date



class _GroupSampler:
    """Draw members of given groups with fixed weights, vectorised over many draws.

    Members are laid out group by group with keys ``group + within-group CDF``, so one
    ``searchsorted`` of ``group + u`` samples every requested group at once.
    """

    def __init__(self, groups: np.ndarray, weights: np.ndarray) -> None:
        self.order = np.argsort(groups, kind="stable")
        g = groups[self.order]
        w = weights[self.order].astype(np.float64)
        cum = np.cumsum(w)
        starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        ends = np.r_[starts[1:], len(g)] - 1
        before = np.repeat(np.r_[0.0, cum[ends[:-1]]], ends - starts + 1)
        within = (cum - before) / np.repeat(cum[ends] - before[starts], ends - starts + 1)
        within[ends] = 1.0  # exact upper edge, so u < 1 never spills into the next group
        self.keys = g + within

    def sample(self, groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self.order[np.searchsorted(self.keys, groups + u, side="right")]


def _zipf(n: int, exponent: float) -> np.ndarray:
    """Weights of popularity ranks 1..n, normalised to sum to 1."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -exponent
    return w / w.sum()


def _brand_names(n: int, rng: np.random.Generator) -> list[str]:
    """Distinct lower-case, pronounceable brand names."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        k = int(rng.integers(2, 4))
        name = "".join(_SYLLABLES[i] for i in rng.integers(0, len(_SYLLABLES), k))
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


@dataclass
class _Catalog:
    """Items (indexed 0..n_items-1, grouped by category) and their attributes."""

    category: np.ndarray  # category index per item
    weight: np.ndarray  # overall popularity per item, sums to 1
    successors: np.ndarray  # (n_items, successors_per_item) item indices
    category_weight: np.ndarray
    product_id: np.ndarray
    category_id: np.ndarray  # per category
    category_code: np.ndarray  # per category, "" when hidden
    brand_text: np.ndarray  # per item, "" when hidden
    price: np.ndarray


def _catalog(cfg: SyntheticConfig, rng: np.random.Generator) -> _Catalog:
    n, c = cfg.n_items, cfg.n_categories
    cat_w = _zipf(c, cfg.category_zipf)
    # Popular categories carry broader assortments, but less than proportionally.
    breadth = np.sqrt(cat_w) / np.sqrt(cat_w).sum()
    sizes = 1 + rng.multinomial(n - c, breadth)
    category = np.repeat(np.arange(c), sizes)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    rank = np.arange(n) - starts[category] + 1  # item order within a category = popularity rank
    within = rank ** -cfg.item_zipf
    within /= np.bincount(category, weights=within)[category]
    weight = cat_w[category] * within
    cat_sampler = _GroupSampler(category, weight)

    n_cat_brands = 1 + rng.multinomial(cfg.n_brands - c, sizes / n)
    brand_cat = np.repeat(np.arange(c), n_cat_brands)
    brand_rank = np.arange(cfg.n_brands) - np.r_[0, np.cumsum(n_cat_brands)[:-1]][brand_cat] + 1
    brand_sampler = _GroupSampler(brand_cat, brand_rank ** -cfg.brand_zipf)
    brand = brand_sampler.sample(category, rng.random(n))
    item_brand_sampler = _GroupSampler(brand, weight)

    # Each category has a few complement categories, more often popular ones.
    complements = np.empty((c, cfg.complements_per_category), dtype=np.int64)
    for k in range(c):
        others = np.delete(np.arange(c), k)
        p = cat_w[others] / cat_w[others].sum()
        complements[k] = rng.choice(others, cfg.complements_per_category, replace=False, p=p)

    shape = (n, cfg.successors_per_item)
    src = np.repeat(np.arange(n), cfg.successors_per_item).reshape(shape)
    same_cat = rng.random(shape) < cfg.successor_same_category
    same_brand = rng.random(shape) < cfg.successor_same_brand
    comp_cat = complements[category[src], rng.integers(0, cfg.complements_per_category, shape)]
    u = rng.random(shape)
    successors = np.where(
        same_cat,
        np.where(same_brand, item_brand_sampler.sample(brand[src], u), cat_sampler.sample(category[src], u)),
        cat_sampler.sample(comp_cat, u),
    )
    # A successor equal to its item would just be a repeat: redraw once from the category.
    self_loop = successors == src
    successors[self_loop] = cat_sampler.sample(category[src[self_loop]], rng.random(int(self_loop.sum())))

    prefixes = rng.choice(np.arange(1, max(600, 2 * c)), c, replace=False)
    stride = 10 ** max(5, len(str(2 * int(sizes.max()))))
    product_id = np.concatenate(
        [p * stride + rng.choice(stride, s, replace=False) for p, s in zip(prefixes, sizes)]
    )
    category_id = _CATEGORY_ID_BASE + rng.choice(10**10, c, replace=False)
    codes = [
        REAL_CATEGORY_CODES[k % len(REAL_CATEGORY_CODES)]
        + (f".line{k // len(REAL_CATEGORY_CODES)}" if k >= len(REAL_CATEGORY_CODES) else "")
        for k in rng.permutation(c)
    ]
    category_code = np.where(rng.random(c) < cfg.p_missing_category_code, "", np.array(codes, dtype=object))
    brand_text = np.array(_brand_names(cfg.n_brands, rng), dtype=object)[brand]
    brand_text[rng.random(n) < cfg.p_missing_brand] = ""

    cat_log_price = rng.uniform(np.log(5.0), np.log(1000.0), c)
    brand_log_price = rng.normal(0.0, 0.3, cfg.n_brands)
    price = np.round(
        np.exp(cat_log_price[category] + brand_log_price[brand] + rng.normal(0.0, cfg.price_sigma, n)), 2
    )
    return _Catalog(category, weight, successors, cat_w, product_id, category_id,
                    category_code, brand_text, price)


def _session_uuids(n: int, rng: np.random.Generator) -> np.ndarray:
    """UUID-4-shaped strings from the seeded stream (uuid4 would not be reproducible)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hx = raw.tobytes().hex()
    return np.array(
        [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in (hx[32 * i: 32 * i + 32] for i in range(n))],
        dtype=object,
    )


def _session_users(cfg: SyntheticConfig, cat: _Catalog, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The user of every session (each user has one, the rest by activity) and each user's
    preferred category."""
    s, u = cfg.n_sessions, cfg.n_users
    extra = rng.choice(u, s - u, p=_zipf(u, cfg.user_activity_zipf))
    preferred = rng.choice(cfg.n_categories, u, p=cat.category_weight)
    return np.concatenate([np.arange(u), extra]), preferred


def _walk_sessions(
    cfg: SyntheticConfig, cat: _Catalog, rng: np.random.Generator, user: np.ndarray, preferred: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Viewed items of the sessions of ``user`` (one entry per session) as (session, item), in
    session then step order; sessions are numbered 0..len(user)-1.

    All sessions advance together one step at a time, so the work is vectorised over sessions
    and the Python loop runs only ``max_session_length`` times.
    """
    s = len(user)
    start_cat = np.where(
        rng.random(s) < cfg.p_user_category,
        preferred[user],
        rng.choice(cfg.n_categories, s, p=cat.category_weight),
    )
    length = np.clip(
        np.rint(cfg.session_length_median * np.exp(cfg.session_length_sigma * rng.standard_normal(s))),
        1, cfg.max_session_length,
    ).astype(np.int64)

    cat_sampler = _GroupSampler(cat.category, cat.weight)
    global_cdf = np.cumsum(cat.weight)
    global_cdf[-1] = 1.0
    succ_cdf = np.cumsum(_zipf(cfg.successors_per_item, 1.0))
    succ_cdf[-1] = 1.0
    # cumulative thresholds on one uniform: repeat | successor | same category | anywhere
    t_repeat = cfg.p_repeat
    t_succ = t_repeat + (1 - t_repeat) * cfg.p_transition
    t_cat = t_succ + (1 - t_succ) * cfg.p_stay_category

    current = cat_sampler.sample(start_cat, rng.random(s))
    chunks_sess, chunks_step, chunks_item = [np.arange(s)], [np.zeros(s, np.int64)], [current.copy()]
    ends_at = np.bincount(length, minlength=int(length.max()) + 1)
    with tqdm(total=s, desc="synthetic sessions", unit=" sessions", disable=None, leave=False) as bar:
        bar.update(int(ends_at[1]))
        for step in range(1, int(length.max())):
            active = np.flatnonzero(length > step)
            cur = current[active]
            r, v = rng.random(len(active)), rng.random(len(active))
            pick = np.minimum(np.searchsorted(succ_cdf, rng.random(len(active)), side="right"),
                              cfg.successors_per_item - 1)
            nxt = np.select(
                [r < t_repeat, r < t_succ, r < t_cat],
                [cur, cat.successors[cur, pick], cat_sampler.sample(cat.category[cur], v)],
                np.minimum(np.searchsorted(global_cdf, v, side="right"), cfg.n_items - 1),
            )
            current[active] = nxt
            chunks_sess.append(active)
            chunks_step.append(np.full(len(active), step, np.int64))
            chunks_item.append(nxt)
            bar.update(int(ends_at[step + 1]))
    sess, step_, item = (np.concatenate(x) for x in (chunks_sess, chunks_step, chunks_item))
    order = np.lexsort((step_, sess))
    return sess[order], item[order]


@dataclass
class _Events:
    """Events as arrays, one entry per event: seconds since ``start``, session number, item, type."""

    seconds: np.ndarray
    session: np.ndarray
    item: np.ndarray
    etype: np.ndarray

    def take(self, index: np.ndarray) -> "_Events":
        return _Events(self.seconds[index], self.session[index], self.item[index], self.etype[index])

    def shifted(self, seconds: int, sessions: int) -> "_Events":
        """The same events later by ``seconds``, their sessions numbered from ``sessions``."""
        return _Events(self.seconds + seconds, self.session + sessions, self.item, self.etype)

    def then(self, later: "_Events") -> "_Events":
        """These events followed by ``later``'s (one day's held-over events before the next day's)."""
        return _Events(*(np.concatenate([a, b]) for a, b in zip(
            (self.seconds, self.session, self.item, self.etype), (later.seconds, later.session, later.item, later.etype))))


def _timed_events(cfg: SyntheticConfig, rng: np.random.Generator, sess: np.ndarray, item: np.ndarray,
                  n_sessions: int, window: int) -> _Events:
    """The funnel around the views and every event's time, in session then step order.

    A cart comes right after a view, then a purchase or (rarely) a removal right after it. Gaps
    are log-normal (>= 1 s, so order inside a session is strict); sessions start uniformly in
    ``[0, window)`` seconds and are kept inside it unless longer than it.
    """
    n_views = len(item)
    cart = rng.random(n_views) < cfg.p_cart
    purchase = cart & (rng.random(n_views) < cfg.p_purchase)
    remove = cart & ~purchase & (rng.random(n_views) < cfg.p_remove_from_cart)
    per_view = 1 + cart.astype(np.int64) + purchase + remove
    view_of = np.repeat(np.arange(n_views), per_view)
    pos = np.arange(len(view_of)) - np.repeat(np.cumsum(per_view) - per_view, per_view)
    etype = np.where(pos == 0, 0, np.where(pos == 1, 1, np.where(purchase[view_of], 2, 3)))
    ev_sess, ev_item = sess[view_of], item[view_of]

    first = np.r_[True, ev_sess[1:] != ev_sess[:-1]]
    gaps = np.where(
        first, 0,
        1 + np.floor(cfg.gap_median_seconds * np.exp(cfg.gap_sigma * rng.standard_normal(len(ev_sess)))),
    ).astype(np.int64)
    offset = np.cumsum(gaps)
    offset -= np.repeat(offset[first], np.diff(np.r_[np.flatnonzero(first), len(offset)]))
    duration = np.zeros(n_sessions, np.int64)
    np.maximum.at(duration, ev_sess, offset)
    start = np.floor(rng.random(n_sessions) * np.maximum(window - duration, 1)).astype(np.int64)
    return _Events(start[ev_sess] + offset, ev_sess, ev_item, etype)


def _frame(cfg: SyntheticConfig, cat: _Catalog, ev: _Events, user_id: np.ndarray,
           session_text: np.ndarray) -> pd.DataFrame:
    """The REES46 columns of ``ev`` (already in time order); ``user_id`` and ``session_text``
    are per event."""
    stamps = np.datetime_as_string(np.datetime64(cfg.start, "s") + ev.seconds.astype("timedelta64[s]"), unit="s")
    item_cat = cat.category[ev.item]
    return pd.DataFrame(
        {
            "event_time": pd.Series(stamps).str.replace("T", " ", regex=False) + " UTC",
            "event_type": np.array(EVENT_TYPES, dtype=object)[ev.etype],
            "product_id": cat.product_id[ev.item],
            "category_id": cat.category_id[item_cat],
            "category_code": cat.category_code[item_cat],
            "brand": cat.brand_text[ev.item],
            "price": cat.price[ev.item],
            "user_id": user_id,
            "user_session": session_text,
        },
        columns=list(REES46_COLUMNS),
    )


def _time_order(ev: _Events) -> np.ndarray:
    """Sort by time; ties by session, then by generation order (steps of a session stay in order)."""
    return np.lexsort((np.arange(len(ev.seconds)), ev.session, ev.seconds))


def generate_events(cfg: SyntheticConfig) -> pd.DataFrame:
    """All events in the REES46 columns, sorted by time (ties: session, then position).

    ``event_time`` is the text written to the CSV (``YYYY-MM-DD HH:MM:SS UTC``), ``price`` is
    rounded to cents, and missing ``category_code``/``brand`` are empty strings. Everything is
    in memory: for data larger than memory use :func:`write_monthly_csvs`.
    """
    rng = np.random.default_rng(cfg.seed)
    cat = _catalog(cfg, rng)
    user, preferred = _session_users(cfg, cat, rng)
    sess, item = _walk_sessions(cfg, cat, rng, user, preferred)
    ev = _timed_events(cfg, rng, sess, item, cfg.n_sessions, cfg.days * 86400)
    session_text = _session_uuids(cfg.n_sessions, rng)
    user_ids = _USER_ID_BASE + rng.choice(50_000_000, cfg.n_users, replace=False)
    ev = ev.take(_time_order(ev))
    return _frame(cfg, cat, ev, user_ids[user[ev.session]], session_text[ev.session])


def _summary(session_length: np.ndarray, sessions_per_user: np.ndarray, items: int,
             type_counts: np.ndarray, first_event: str, last_event: str) -> dict[str, Any]:
    """Headline statistics (events per session, sessions per user of the users seen, ...)."""
    events = int(session_length.sum())
    return {
        "events": events,
        "sessions": int(len(session_length)),
        "users": int(len(sessions_per_user)),
        "items": int(items),
        "event_types": {t: int(c) for t, c in zip(EVENT_TYPES, type_counts)},
        "view_share": float(type_counts[0] / events),
        "session_length": {
            "median": float(np.median(session_length)),
            "mean": float(session_length.mean()),
            "p99": float(np.quantile(session_length, 0.99)),
            "max": int(session_length.max()),
        },
        "sessions_per_user": {"mean": float(sessions_per_user.mean()), "max": int(sessions_per_user.max())},
        "first_event": first_event,
        "last_event": last_event,
    }


def summarize_events(df: pd.DataFrame) -> dict[str, Any]:
    """Headline statistics of an events frame, to compare against the real REES46 month."""
    per_user = df.groupby("user_id", sort=False)["user_session"].nunique()
    counts = df["event_type"].value_counts()
    return _summary(df.groupby("user_session", sort=False).size().to_numpy(), per_user.to_numpy(),
                    df["product_id"].nunique(), np.array([counts.get(t, 0) for t in EVENT_TYPES]),
                    str(df["event_time"].iloc[0]), str(df["event_time"].iloc[-1]))


def write_events_csv(cfg: SyntheticConfig, path: str | Path) -> dict[str, Any]:
    """Generate and write the events CSV atomically; return :func:`summarize_events`."""
    df = generate_events(cfg)
    with atomic_path(path) as tmp:
        _to_csv(df, tmp, header=True)
    return summarize_events(df)


def _to_csv(df: pd.DataFrame, target: Any, header: bool) -> None:
    df.to_csv(target, index=False, header=header, float_format="%.2f", lineterminator="\n")


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _day_months(cfg: SyntheticConfig) -> list[str]:
    """The REES46 monthly file name (``2019-Oct.csv``) of every day of the window."""
    days = np.datetime64(cfg.start, "D") + np.arange(cfg.days)
    return [f"{str(d)[:4]}-{_MONTHS[int(str(d)[5:7]) - 1]}.csv" for d in days]


def month_files(cfg: SyntheticConfig) -> list[str]:
    """The files :func:`write_monthly_csvs` writes, in time order (REES46's names)."""
    return list(dict.fromkeys(_day_months(cfg)))


def _split_evenly(total: int, parts: int) -> np.ndarray:
    return np.diff(np.arange(parts + 1) * total // parts)


def write_monthly_csvs(cfg: SyntheticConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write the events as REES46's monthly CSVs in ``out_dir``, in memory bounded by one day.

    For data larger than memory (the paper's 69 M events). Sessions are drawn day by day, each
    day from its own seeded stream (``default_rng([seed, day])``) after the catalogue, users'
    preferred categories and ids (drawn once from ``default_rng(seed)``); so the bytes depend on
    the config alone, but differ from :func:`write_events_csv`'s single draw of the same seed.
    A session starts and stays inside its day unless it is longer than a day; what spills over
    is held until its day is written, so every file is in time order. Each user's first
    session falls on the days in proportion, the others follow the activity law. Files appear
    atomically, complete or not at all. Returns the same summary as :func:`write_events_csv`.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    cat = _catalog(cfg, rng)
    preferred = rng.choice(cfg.n_categories, cfg.n_users, p=cat.category_weight)
    user_ids = _USER_ID_BASE + rng.choice(50_000_000, cfg.n_users, replace=False)
    activity = _zipf(cfg.n_users, cfg.user_activity_zipf)
    sessions, firsts = _split_evenly(cfg.n_sessions, cfg.days), _split_evenly(cfg.n_users, cfg.days)
    day_file = _day_months(cfg)

    lengths, item_seen = [], np.zeros(cfg.n_items, bool)
    per_user, types = np.zeros(cfg.n_users, np.int64), np.zeros(len(EVENT_TYPES), np.int64)
    stamps: list[str] = []
    held: tuple[_Events, np.ndarray, np.ndarray] | None = None  # events of later days, their user ids, uuids
    next_user = next_session = 0
    bar = tqdm(total=cfg.n_sessions, desc="synthetic sessions", unit=" sessions", unit_scale=True, disable=None)
    for name in month_files(cfg):
        with atomic_path(out_dir / name) as tmp, open(tmp, "w", newline="") as fh:
            for n, day in enumerate(d for d, f in enumerate(day_file) if f == name):
                day_rng = np.random.default_rng([cfg.seed, day])
                new_users = min(int(firsts[day]), int(sessions[day]), cfg.n_users - next_user)
                user = np.concatenate([np.arange(next_user, next_user + new_users),
                                       day_rng.choice(cfg.n_users, sessions[day] - new_users, p=activity)])
                next_user += new_users
                sess, item = _walk_sessions(cfg, cat, day_rng, user, preferred)
                ev = _timed_events(cfg, day_rng, sess, item, len(user), 86400)
                uuids = _session_uuids(len(user), day_rng)
                lengths.append(np.bincount(ev.session, minlength=len(user)))
                np.add.at(per_user, user, 1)
                item_seen[ev.item] = True
                types += np.bincount(ev.etype, minlength=len(EVENT_TYPES))
                ev = ev.shifted(day * 86400, next_session)
                ev_user, ev_uuid = user_ids[user[ev.session - next_session]], uuids[ev.session - next_session]
                next_session += len(user)
                if held is not None:
                    ev = held[0].then(ev)
                    ev_user, ev_uuid = np.concatenate([held[1], ev_user]), np.concatenate([held[2], ev_uuid])
                order = _time_order(ev)
                ev, ev_user, ev_uuid = ev.take(order), ev_user[order], ev_uuid[order]
                last_day = day == cfg.days - 1
                now = len(ev.seconds) if last_day else int(np.searchsorted(ev.seconds, (day + 1) * 86400))
                frame = _frame(cfg, cat, ev.take(np.arange(now)), ev_user[:now], ev_uuid[:now])
                _to_csv(frame, fh, header=n == 0)
                if now:
                    stamps = [stamps[0] if stamps else frame["event_time"].iloc[0], frame["event_time"].iloc[-1]]
                rest = np.arange(now, len(ev.seconds))
                held = (ev.take(rest), ev_user[rest], ev_uuid[rest]) if len(rest) else None
                bar.update(len(user))
    bar.close()
    return _summary(np.concatenate(lengths), per_user[per_user > 0], int(item_seen.sum()), types, *stamps)


def ensure_default_events(path: str | Path, seed: int = 42) -> Path:
    """The default synthetic events at ``path``, generated first if missing (stand-alone notebooks)."""
    path = Path(path)
    if not path.exists():
        write_events_csv(SyntheticConfig(seed=seed), path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m recpress_utils.data.synthetic --out PATH [--params JSON]``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", required=True, type=Path,
                        help="CSV file to write; with the knob monthly: the folder of the monthly CSVs")
    parser.add_argument("--params", default="{}", help="JSON object of SyntheticConfig knobs")
    args = parser.parse_args(argv)
    params = json.loads(args.params)
    if not isinstance(params, dict):
        parser.error("--params must be a JSON object")
    cfg = SyntheticConfig.from_dict(params)
    summary = write_monthly_csvs(cfg, args.out) if cfg.monthly else write_events_csv(cfg, args.out)
    print(json.dumps(summary, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
