"""The status page in a real browser: Debian's headless Chromium driven by
selenium through Debian's chromedriver (given explicitly, so that
selenium-manager never downloads a browser or a driver), one browser and
one real server (tests/server.py, as `make run` serves) per module.

Without /usr/bin/chromium or /usr/bin/chromedriver the browser tests skip,
naming the packages. A failing test leaves a screenshot, the page's HTML
and the browser's console under var/browser-failures/ (var/ is git-ignored),
named in the failure's report."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.crashes import start_server

CHROMIUM = Path(os.environ.get("PROVISIONER_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PROVISIONER_CHROMEDRIVER", "/usr/bin/chromedriver"))
MISSING = ("the browser tests need Chromium and its driver: apt-get install chromium chromium-driver "
           f"(the Debian packages `chromium` and `chromium-driver`; looked for {CHROMIUM} and {CHROMEDRIVER})")
FAILURES = Path(__file__).resolve().parent.parent.parent / "var" / "browser-failures"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1400,1000")


def browser_missing():
    return not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK) and CHROMEDRIVER.exists())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real server with the project `demo`; (server, the admin's bearer token)."""
    started, token = start_server(tmp_path_factory.mktemp("browser") / "var")
    try:
        yield started, token
    finally:
        started.stop()
        # the agents of its local clusters end with it
        for program in sorted(started.var_dir.glob("nodes/*/*/bin/provisioner-agent")):
            subprocess.run([sys.executable, str(program), "stop-all", str(program.parent.parent)],
                           capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if browser_missing():
        pytest.skip(MISSING)
    pytest.importorskip("selenium", reason="selenium is missing: .venv/bin/pip install -e '.[test]'")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(tmp_path_factory.getbasetemp() /
                                                                         "chromedriver.log"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    browser = item.funcargs.get("driver")
    if browser is None:
        return
    FAILURES.mkdir(parents=True, exist_ok=True)
    stem = FAILURES / re.sub(r"[^A-Za-z0-9_.-]+", "_", item.name)
    saved = []
    try:
        if browser.save_screenshot(f"{stem}.png"):
            saved.append(f"{stem}.png")
        Path(f"{stem}.html").write_text(browser.page_source)
        saved.append(f"{stem}.html")
        console = browser.get_log("browser")
        Path(f"{stem}.console.json").write_text(json.dumps(console, indent=1))
        saved.append(f"{stem}.console.json")
    except Exception as error:  # the browser may be what failed
        saved.append(f"(could not save everything: {error})")
    report.sections.append(("browser failure", f"kept in {FAILURES}:\n" + "\n".join(saved)))
    if hasattr(report.longrepr, "addsection"):
        report.longrepr.addsection("browser failure", f"screenshot, page and console kept in {FAILURES}")

