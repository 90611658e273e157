"""Published figures of the real REES46 data, to print beside whatever dataset was prepared."""

from __future__ import annotations

from typing import Iterable

import pandas as pd

from recpress_utils.data.rees46 import EVENT_STRENGTH

#: Published sizes (SPEC section 2; the paper's Section 4 for Oct-Nov; shared/data/README for the slice).
REAL_REES46: dict[str, dict[str, float | None]] = {
    "REES46 Oct 2019": {"events": 42.4e6, "sessions": None, "users": 3.0e6, "items": 138e3,
                        "view share": None, "events per session": None},
    "paper, Oct-Nov 2019": {"events": 69e6, "sessions": 6.5e6, "users": None, "items": None,
                            "view share": None, "events per session": 69e6 / 6.5e6},
    "REES46 1k-row slice": {"events": 1000, "sessions": 372, "users": None, "items": None,
                            "view share": 0.987, "events per session": 1000 / 372},
}
#: The real view share of a month lies in this range (SPEC section 2).
REAL_VIEW_SHARE = (0.95, 0.98)

_ACTION_NAMES = {v: k for k, v in EVENT_STRENGTH.items()}


def action_names(action_lists: Iterable[Iterable[int]]) -> list[str]:
    """Flatten per-session action strengths into event-type names."""
    return [_ACTION_NAMES[int(a)] for actions in action_lists for a in actions]


def compare_to_rees46(stats: dict) -> pd.DataFrame:
    """A table of this dataset's raw sizes beside the real REES46 figures."""
    read, collapsed = stats["read"], stats["collapsed"]
    kept = read["rows_kept"]
    views = read.get("event_types", {}).get("view", 0)
    ours = {
        "events": kept,
        "sessions": collapsed["sessions"],
        "users": collapsed["users"],
        "items": collapsed["items"],
        "view share": round(views / kept, 4) if kept else None,
        "events per session": round(kept / collapsed["sessions"], 3) if collapsed["sessions"] else None,
    }
    table = pd.DataFrame({"this dataset": ours, **REAL_REES46})
    return table.map(_fmt)


def _fmt(x: float | None) -> str:
    if x is None or pd.isna(x):
        return "n/a"
    return f"{x:.3f}" if x < 100 and x != int(x) else f"{int(x):,}"
