"""Shared fixtures: the real REES46 slice and small hand-made event files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recpress_utils.paths import REPO_ROOT

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"


@pytest.fixture(scope="session")
def rees46_slice() -> Path:
    """The real 1,000-row slice of the REES46 October file (shared/ beside the repository)."""
    path = REPO_ROOT.parent / "shared" / "data" / "rees46" / "2019-Oct-sample-1k.csv"
    if not path.exists():
        pytest.skip(f"real REES46 fixture not found at {path}")
    return path


def write_events(path: Path, rows: list[str], header: str = HEADER) -> Path:
    """Write a small events CSV (rows given as raw CSV lines)."""
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def event(t: str, item: int, session: str, kind: str = "view", user: int = 1, cat: int = 7) -> str:
    """One CSV line in the REES46 schema; ``t`` is 'HH:MM:SS' on 2019-10-01."""
    return f"2019-10-01 {t} UTC,{kind},{item},{cat},cat.code,brand,1.50,{user},{session}"


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """A small prepared synthetic dataset (about 1,400 sessions, 200 items), built once per test run."""
    from recpress_utils.data.prepare import PrepareConfig, prepare_from_raw
    from recpress_utils.data.synthetic import SyntheticConfig, write_events_csv

    root = tmp_path_factory.mktemp("tiny_data")
    raw = root / "events.csv"
    write_events_csv(SyntheticConfig(n_items=200, n_sessions=2500, n_users=800, n_categories=10,
                                     n_brands=40, days=10, seed=7), raw)
    prepare_from_raw(raw, root / "prepared", PrepareConfig(min_item_support=3))
    return root / "prepared"


@pytest.fixture
def deterministic():
    """torch's deterministic algorithms for one test, restored afterwards."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


def assert_causal(model, items, n_items: int):
    """Changing the items after position t never changes the logits at positions <= t.

    Returns the logits of ``items`` (B, L, n_items) and of the last changed batch, so callers
    can check more (e.g. that the future is not ignored altogether).
    """
    import torch

    with torch.no_grad():
        base = model(items)
        for t in range(items.shape[1] - 1):
            changed = items.clone()
            future = changed[:, t + 1:]
            changed[:, t + 1:] = torch.where(future != 0, future % (n_items - 1) + 1, future)
            assert not torch.equal(changed, items)
            torch.testing.assert_close(model(changed)[:, :t + 1], base[:, :t + 1], atol=1e-6, rtol=0)
        return base, model(changed)


TINY = yaml.safe_load((REPO_ROOT / "config" / "tiny.yaml").read_text())


def tiny_subset(path: Path, **replace) -> Path:
    """``config/tiny.yaml`` with top-level sections replaced, not merged (a second ``--configfile``
    would merge ``kd.methods`` into tiny's), written to ``path``: a smaller tiny profile for tests
    that rerun the pipeline to check one thing (SLURM, a setting) and need not pay for every peer
    and distillation method again (each job costs ~10 s of kernel start)."""
    path.write_text(yaml.safe_dump({**TINY, **replace}))
    return path


#: The part of the tiny profile those tests run: a peer of each kind the cluster and the teacher
#: setting touch (a transformer that can be the teacher, a model with no training) and two of
#: tiny's distillation methods at its smaller size (one offline, one online: the teacher trained
#: in the job).
TINY_SUBSET = {"peers": ["popularity", "sasrec"],
               "kd": {"sizes": {"e16": TINY["kd"]["sizes"]["e16"]},
                      "methods": {m: TINY["kd"]["methods"][m] for m in ("soft", "dml")}}}


#: For test runs of the pipeline: on a loaded 2-core machine a notebook's kernel now and then misses
#: papermill's 60 s start timeout and its job fails without having run; one retry absorbs that,
#: while a job that really fails fails twice and still fails the test.
RETRY = ("--retries", "1")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny profile run once per test session into a fresh results folder (``<results>/synthetic``),
    shared by every test module that checks a pipeline output."""
    import subprocess
    import sys

    results = tmp_path_factory.mktemp("results")
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *RETRY, "--configfile", "config/tiny.yaml",
                           "--config", f"results_dir={results}"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return results / "synthetic"
