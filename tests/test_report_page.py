"""The page a reader opens first: reports/index.html rendered by a real browser (headless Chromium)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from recpress_utils.paths import REPO_ROOT

INDEX = REPO_ROOT / "reports" / "index.html"


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def rendered_dom(tmp_path_factory) -> str:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; .ci/run installs Debian's chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    assert INDEX.exists(), "reports/index.html is committed with the default run's report"
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
         "--dump-dom", INDEX.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_page_shows_the_tables(rendered_dom):
    tables = re.findall(r"<table", rendered_dom)
    assert len(tables) >= 5, f"only {len(tables)} tables rendered"
    for heading in ("Tables 2-3", "Tables 4-5", "Table 6", "The claims", "Figure 8"):
        assert heading in rendered_dom, heading
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert f">{claim}<" in rendered_dom, claim


def test_page_shows_the_figures(rendered_dom):
    images = re.findall(r'<img[^>]+src="data:image/png;base64,', rendered_dom)
    assert len(images) >= 4, f"only {len(images)} figures rendered"


def test_every_claim_evidence_is_on_the_page_in_full(rendered_dom):
    """The claims table shows each verdict's whole evidence (it was once cut at 50 characters)."""
    import html

    from recpress_utils.report import claims
    from recpress_utils.report.digest import load_digest

    text = html.unescape(re.sub(r"<[^>]+>", "", rendered_dom))
    verdicts = claims.claims_table(load_digest(REPO_ROOT / "reports" / "synthetic"))
    for claim, row in verdicts.iterrows():
        assert row["evidence"] in text, f"{claim}: evidence not shown in full"
        assert row["verdict"] in text, claim
