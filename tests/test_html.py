"""--format html: one self-contained file for score, merge and drift, and the same file in a real browser."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import streamdiv
from streamdiv.cli import main
from streamdiv.synthetic import write_days

NETWORK = re.compile(r"""(?:src|href|action|poster|srcset)\s*=\s*["']?\s*(?:https?:|//)|url\(\s*["']?\s*(?:https?:|//)|@import""",
                     re.IGNORECASE)


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    directory = tmp_path_factory.mktemp("week")
    paths = write_days(str(directory), days=4, rows_per_day=3000, shift_day=3)
    return directory, paths


def _invoke(*args, code=0):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, (result.output, result.exception)
    return result


def _html(path) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _self_contained(text: str) -> None:
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert not NETWORK.search(text), NETWORK.search(text).group(0)
    assert "<script" not in text and "<link" not in text


def test_score_writes_one_self_contained_file(week, tmp_path):
    directory, _ = week
    out = tmp_path / "week.html"
    _invoke("score", directory, "--probs", "probs", "--labels", "label", "--by", "region", "--time", "ts",
            "--window", "1d", "-o", out)  # the format from the suffix
    text = _html(out)
    _self_contained(text)
    report = streamdiv.evaluate(str(directory), probs="probs", labels="label", by="region", time="ts", window="1d")
    metrics = report.metrics
    assert (f"{report.rows_read:,} rows read = {metrics['rows']:,} evaluated + {metrics['skipped_rows']:,} skipped + "
            f"{metrics['ignored_rows']:,} ignored") in text
    assert "information in nats" in text and f"streamdiv {streamdiv.__version__}" in text
    for title in ("Metrics", "Reliability", "Classes", "Groups", "Over time"):
        assert f"<h2>{title}</h2>" in text
    assert text.count("<svg") == 4  # the reliability diagram and three series
    assert f"<td>{metrics['ece']:.6f}</td>" in text
    assert text.count("<tr><td class=name>2026-11-2") == len(report.groups)


def test_merge_and_drift_write_html_too(week, tmp_path):
    directory, paths = week
    state = tmp_path / "reference.state"
    _invoke("score", paths[0], "--probs", "probs", "--labels", "label", "--by", "region", "--save-state", state,
            "-o", tmp_path / "reference.json")
    merged = tmp_path / "merged.html"
    _invoke("merge", state, "--format", "html", "-o", merged)
    _self_contained(_html(merged))
    out = tmp_path / "drift.html"
    _invoke("drift", "--reference", state, *paths[1:], "--probs", "probs", "--labels", "label", "--by", "region",
            "--time", "ts", "--window", "1d", "-o", out)
    text = _html(out)
    _self_contained(text)
    for title in ("Drift", "Metrics, reference against current", "Groups", "Over time"):
        assert f"<h2>{title}</h2>" in text
    assert text.count("<svg") == 3  # the three distributions, two drift series
    drift = streamdiv.drift(str(state), [str(p) for p in paths[1:]], probs="probs", labels="label", by="region",
                            time="ts", window="1d")
    assert f"<td>{drift.metrics['confidence_psi']:.6f}</td>" in text
    assert "reference: " in text and "current side: " in text


def test_a_label_free_run_shows_its_confidence_histogram(week, tmp_path):
    import pyarrow.parquet as pq

    _, paths = week
    unlabelled = tmp_path / "unlabelled.parquet"
    pq.write_table(pq.read_table(paths[0]).drop_columns(["label"]), unlabelled)
    out = tmp_path / "alone.html"
    _invoke("score", unlabelled, "--probs", "probs", "--format", "html", "-o", out)
    text = _html(out)
    assert "<h2>Confidence</h2>" in text and text.count("<svg") == 1 and "accuracy" not in text


# ---- in a real browser


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


# Hosts that Chromium itself calls in the background (its clock, updates, sign-in, field trials), whatever the
# page; a request to any other host (a font, a script, an image on a CDN) is the page's and fails the test.
BROWSER_SERVICES = {"clients2.google.com", "update.googleapis.com", "accounts.google.com",
                    "clientservices.googleapis.com", "optimizationguide-pa.googleapis.com",
                    "safebrowsing.googleapis.com", "content-autofill.googleapis.com", "redirector.gvt1.com",
                    "edgedl.me.gvt1.com", "android.clients.google.com", "www.google.com"}


def _host(request: bytes) -> str:
    """The host a proxied request asks for: 'GET http://host/...' or 'CONNECT host:443'."""
    target = request.split(b" ")[1].decode(errors="replace") if request.count(b" ") else ""
    target = target.split("://", 1)[-1]
    return target.split("/", 1)[0].split(":", 1)[0]


class _Trap:
    """A local proxy that records every connection made to it: the browser is pointed at it for every
    scheme, so any fetch from the network (http, https, ws) shows up here instead of leaving the machine."""

    def __init__(self):
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.requests.append(connection.recv(4096))
            connection.close()


NEEDS_BROWSER = pytest.mark.skipif(_browser() is None and not os.environ.get("STREAMDIV_REQUIRE_BROWSER"),
                                   reason="no Chromium installed (apt-get install chromium; .ci/run installs it)")


def _render(page, scratch) -> tuple[list[bytes], str, object]:
    """Load ``page`` in headless Chromium with every connection sent to a trap: (the page's own requests, the
    rendered DOM, the screenshot's path)."""
    browser = _browser()
    assert browser, "STREAMDIV_REQUIRE_BROWSER is set but no Chromium was found"
    trap = _Trap()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-default-apps", "--disable-client-side-phishing-detection", "--disable-domain-reliability",
             "--no-pings", "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
             f"--proxy-server=127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
             f"--user-data-dir={scratch / 'profile'}"]
    screenshot = scratch / "shot.png"
    subprocess.run(flags + [f"--screenshot={screenshot}", "--window-size=1200,3000", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    dom = subprocess.run(flags + ["--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    return [request for request in trap.requests if _host(request) not in BROWSER_SERVICES], dom, screenshot


@NEEDS_BROWSER
def test_the_trap_catches_a_page_that_fetches(tmp_path):
    """The control: a page with an image and a font from the network is caught."""
    page = tmp_path / "fetching.html"
    page.write_text("<!doctype html><html><head><link rel=stylesheet href='http://fonts.example.org/a.css'>"
                    "</head><body><img src='http://cdn.example.org/x.png'></body></html>")
    requests, _, _ = _render(page, tmp_path)
    assert {_host(request) for request in requests} >= {"fonts.example.org", "cdn.example.org"}


@NEEDS_BROWSER
def test_the_report_renders_in_a_headless_browser_without_the_network(week, tmp_path):
    directory, _ = week
    page = tmp_path / "week.html"
    _invoke("score", directory, "--probs", "probs", "--labels", "label", "--by", "region", "--time", "ts",
            "--window", "1d", "--format", "html", "-o", page)
    requests, dom, screenshot = _render(page, tmp_path)
    assert requests == [], requests  # nothing was fetched from the network
    # The rendered DOM holds the diagrams and the tables, as the browser parsed them.
    assert dom.count("<svg") == 4 and dom.count("<table>") >= 3 and "<h2>Reliability</h2>" in dom
    import matplotlib.image

    pixels = matplotlib.image.imread(str(screenshot))
    assert pixels.shape[:2] == (3000, 1200)
    # Not a blank page: dark text and the diagrams' colours, not only white.
    assert (pixels[..., :3] < 0.5).any(axis=-1).mean() > 0.01
    colourful = np.abs(pixels[..., 0] - pixels[..., 2]) > 0.2
    assert colourful.any()
