"""The status page at `/` in headless Chromium against a real server: sign in
through the form, create clusters through the form built from the service's
options (one reaches active, one fails with its reason) and watch them move
without a reload, submit and cancel jobs and see the server's counts move,
a cmd holding markup shown as text, the stream lost and found again across a
server restart, and sign out (the old cookie is refused after). Beside the
browser: the security headers on every response, and a cookie without its
CSRF token refused.

The tests run in order on one server and one browser (the module's
fixtures), in one xdist group. How long events take from their commit to
the page is printed, not asserted."""
import math
import time

import pytest

from pyramid_app.page import CONTENT_SECURITY_POLICY
from tests.conftest import new_private_key
from tests.crashes import ADMIN_PASSWORD

pytestmark = pytest.mark.xdist_group("browser")  # one server and one browser for the module

PROJECT = "/v1/projects/demo"


# -- helpers -----------------------------------------------------------------------


def http(server, method, path, body=None, headers=None):
    """(status, headers, parsed JSON or text) of one request with the given headers."""
    return server.request(method, path, body, headers=headers)


def job_row_of_group(page, group):
    """The name of the first job row whose reporting group is `group`."""
    return page.execute_script(
        "return [...document.querySelectorAll('tr[data-test=\"job-row\"]')]"
        ".find(r => r.querySelector('[data-field=\"rep_grp\"]').textContent === arguments[0]).dataset.name",
        group)


def until(driver, condition, timeout=30, what="the page"):
    """Wait for `condition()` to be true; fail naming `what` and the page's error banner."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except Exception:  # an element replaced while read: look again
            pass
        if time.monotonic() > deadline:
            banner = text(driver, "#error") or ""
            raise AssertionError(f"gave up waiting for {what} after {timeout} s; the page's error: {banner!r}")
        time.sleep(0.05)


def text(driver, css):
    return driver.execute_script("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                                 css)


def shown(driver, css):
    return driver.execute_script("const e = document.querySelector(arguments[0]);"
                                 "return !!e && e.getClientRects().length > 0;", css)


def find(driver, css):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, css)


def fill(driver, css, value):
    field = find(driver, css)
    field.clear()
    field.send_keys(str(value))


def choose(driver, css, value):
    from selenium.webdriver.support.ui import Select
    Select(find(driver, css)).select_by_value(value)


def session_cookie(driver):
    cookie = driver.get_cookie("provisioner_session")
    return cookie and cookie["value"]


def go(driver, server, fragment):
    """Show `fragment` (#/p/...) without reloading the page (a reload would reset the marker)."""
    driver.execute_script("location.hash = arguments[0];", fragment)
    until(driver, lambda: driver.execute_script("return document.body.dataset.stream") == "open",
          what=f"the event stream of {fragment} to open")


def cluster_row(name, field):
    return f'tr[data-test="cluster-row"][data-name="{name}"] [data-field="{field}"]'


def count_cell(group, state):
    return f'#job-counts tr[data-grp="{group}"] td[data-state="{state}"]'


def still_the_same_page(driver):
    return driver.execute_script("return window.notReloaded === true;")


@pytest.fixture(scope="module")
def page(driver, server):
    """The browser showing the server's `/`, never reloaded unless a test says so."""
    started, _ = server
    driver.get(started.url + "/")
    until(driver, lambda: driver.execute_script("return document.body.dataset.signedIn") in ("true", "false"),
          what="the page to start")
    driver.execute_script("window.notReloaded = true;")
    return driver


# -- beside the browser --------------------------------------------------------------


def test_every_response_carries_the_security_headers(server):
    started, token = server
    for path, token_used in (("/", None), ("/static/app.js", None), ("/v1/version", None), (PROJECT, token),
                             (PROJECT, None), ("/no/such/page", None)):
        status, headers, _ = http(started, "GET", path,
                                  headers={"Authorization": f"Bearer {token_used}"} if token_used else {})
        assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Referrer-Policy"] == "no-referrer", path
    assert CONTENT_SECURITY_POLICY == ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
                                       "data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                                       "base-uri 'none'")
    status, headers, body = http(started, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and "app.js" in body
    assert "<script>" not in body and " style=" not in body  # nothing inline: the CSP would refuse it
    status, headers, _ = http(started, "GET", "/static/app.js")
    assert status == 200 and "javascript" in headers["Content-Type"]


def test_a_session_is_a_cookie_and_a_change_needs_its_csrf_token(server):
    started, token = server
    status, headers, body = http(started, "POST", "/v1/auth/session", {"username": "admin", "password": "wrong"})
    assert status == 401 and body["error"] == "AuthenticationFailed"
    status, headers, body = http(started, "POST", "/v1/auth/session",
                                 {"username": "admin", "password": ADMIN_PASSWORD})
    assert status == 201 and set(body) == {"user", "expires_at", "csrf_token"} and body["user"] == "admin"
    cookie = headers["Set-Cookie"]
    assert cookie.startswith("provisioner_session=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Path=/" in cookie and "Secure" not in cookie  # plain http here
    session = {"Cookie": cookie.split(";")[0]}
    assert http(started, "GET", "/v1/auth/session", headers=session)[2] == body  # a reloaded page learns it again
    assert http(started, "GET", "/v1/users/me", headers=session)[2]["name"] == "admin"
    status, _, refused = http(started, "DELETE", "/v1/warnings", headers=session)
    assert status == 403 and refused["error"] == "CSRFTokenMissing" and "X-CSRF-Token" in refused["message"]
    status, _, refused = http(started, "DELETE", "/v1/warnings", headers=dict(session, **{"X-CSRF-Token": "0" * 64}))
    assert status == 403 and refused["error"] == "CSRFTokenInvalid"
    with_csrf = dict(session, **{"X-CSRF-Token": body["csrf_token"]})
    assert http(started, "DELETE", "/v1/warnings", headers=with_csrf)[0] == 200
    # a bearer token needs no CSRF token, with or without a cookie beside it
    assert http(started, "DELETE", "/v1/warnings", headers=dict(session, Authorization=f"Bearer {token}"))[0] == 200
    assert http(started, "DELETE", "/v1/auth/session", headers=session)[0] == 403  # signing out needs it too
    status, headers, _ = http(started, "DELETE", "/v1/auth/session", headers=with_csrf)
    assert status == 204 and "Max-Age=0" in headers["Set-Cookie"]
    assert http(started, "GET", "/v1/auth/session", headers=session)[0] == 401
    assert http(started, "GET", "/v1/users/me", headers=session)[0] == 401
    document = http(started, "GET", "/v1/openapi.json")[2]
    assert set(document["paths"]["/v1/auth/session"]) == {"get", "post", "delete"}


# -- in the browser -------------------------------------------------------------------


def test_sign_in_through_the_form(page):
    until(page, lambda: shown(page, "#signin-form"), what="the sign-in form")
    fill(page, "#signin-username", "admin")
    fill(page, "#signin-password", "not-the-password")
    find(page, "#signin-submit").click()
    until(page, lambda: text(page, "#signin-error") == "Wrong username or password.", what="the refusal")
    fill(page, "#signin-password", ADMIN_PASSWORD)
    find(page, "#signin-submit").click()
    until(page, lambda: shown(page, "#signout") and not shown(page, "#signin-form"), what="signing in")
    until(page, lambda: page.execute_script("return document.querySelector('tr[data-name=\"demo\"]') !== null"),
          what="the project list")
    cookie = page.get_cookie("provisioner_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.execute_script("return document.cookie") == ""  # the page's script cannot read it
    assert still_the_same_page(page)


def test_create_a_cluster_through_the_form_and_watch_it_become_active(page, server):
    go(page, server[0], "#/p/demo")
    until(page, lambda: shown(page, '#create-form [data-option="nodes"]'), what="the create form")
    # the form is built from the options specification: sections, descriptions, choices
    sections = page.execute_script(
        "return [...document.querySelectorAll('#create-options [data-section]')].map(s => s.dataset.section)")
    assert sections == ["required", "optional", "advanced"]
    assert "Number of nodes" in text(page, "#create-options")
    assert page.execute_script("return document.querySelector('[data-option=\"provider\"]').tagName") == "SELECT"
    fill(page, "#create-name", "web")
    fill(page, '[data-option="nodes"]', 1)
    find(page, "#create-submit").click()
    until(page, lambda: text(page, cluster_row("web", "state")) is not None, what="the new cluster's row")
    until(page, lambda: text(page, cluster_row("web", "state")) == "active", timeout=120,
          what="the cluster to become active")
    assert text(page, cluster_row("web", "nodes")) == "1"
    assert "tasks done" in text(page, cluster_row("web", "progress"))
    assert still_the_same_page(page) and not shown(page, "#stream-lost")


def test_submit_jobs_and_see_the_counts_move(page, server):
    go(page, server[0], "#/p/demo/c/web")
    until(page, lambda: text(page, '#cluster-detail [data-field="state"]') == "active", what="the cluster")
    until(page, lambda: text(page, count_cell("", "succeeded")) is not None, what="the job counts")
    fill(page, "#job-cmd", "echo hello")
    fill(page, "#job-count", 5)
    fill(page, "#job-rep-grp", "quick")
    find(page, "#job-submit").click()
    until(page, lambda: text(page, '#job-form [data-test="notice"]') == "Submitted 5 jobs.", what="the answer")
    until(page, lambda: text(page, count_cell("quick", "succeeded")) == "5", timeout=60,
          what="5 succeeded jobs in the counts")
    assert text(page, count_cell("", "succeeded")) == "5"
    assert page.execute_script("return document.querySelectorAll('tr[data-test=\"job-row\"]').length") == 5
    until(page, lambda: page.execute_script(
        "return [...document.querySelectorAll('tr[data-test=\"job-row\"] [data-field=\"state\"]')]"
        ".every(c => c.textContent === 'succeeded')"), what="the rows to follow their jobs")
    assert still_the_same_page(page)


def test_cancel_one_job_and_see_it_cancelled(page, server):
    fill(page, "#job-cmd", "sleep 600")
    fill(page, "#job-count", 1)
    fill(page, "#job-rep-grp", "slow")
    find(page, "#job-submit").click()
    until(page, lambda: text(page, count_cell("slow", "running")) == "1", timeout=60, what="the job to run")
    name = job_row_of_group(page, "slow")
    row = f'tr[data-test="job-row"][data-name="{name}"]'
    find(page, f'{row} [data-test="job-cancel"]').click()
    until(page, lambda: text(page, f'{row} [data-field="state"]') == "cancelled", what="the job to be cancelled")
    until(page, lambda: text(page, count_cell("slow", "cancelled")) == "1", what="the counts to say so")
    assert text(page, count_cell("slow", "running")) == "0"


def test_cancel_the_jobs_of_a_group(page, server):
    fill(page, "#job-cmd", "sleep 600")
    fill(page, "#job-count", 3)
    fill(page, "#job-rep-grp", "bulk")
    find(page, "#job-submit").click()
    until(page, lambda: text(page, count_cell("bulk", "cancelled")) == "0", what="the group's counts")
    fill(page, "#cancel-rep-grp", "bulk")
    find(page, "#cancel-submit").click()
    until(page, lambda: text(page, '#cancel-form [data-test="notice"]') == "Cancelled 3 jobs.", what="the answer")
    until(page, lambda: text(page, count_cell("bulk", "cancelled")) == "3", timeout=60, what="3 cancelled jobs")
    # with no filter the service refuses, and the page says why
    fill(page, "#cancel-rep-grp", "")
    find(page, "#cancel-submit").click()
    until(page, lambda: "at least one filter" in (text(page, '#cancel-form [data-test="form-error"]') or ""),
          what="the refusal")


def test_markup_in_a_cmd_shows_as_text(page, server):
    fill(page, "#job-cmd", "echo '<b>x</b><img src=x onerror=alert(1)>'")
    fill(page, "#job-count", 1)
    fill(page, "#job-rep-grp", "markup")
    find(page, "#job-submit").click()
    until(page, lambda: text(page, count_cell("markup", "succeeded")) == "1", timeout=60, what="the job")
    name = job_row_of_group(page, "markup")
    row = f'tr[data-test="job-row"][data-name="{name}"]'
    assert text(page, f'{row} [data-field="cmd"]') == "echo '<b>x</b><img src=x onerror=alert(1)>'"
    assert page.execute_script(f"return document.querySelectorAll('{row} b, {row} img').length") == 0
    find(page, f'{row} a').click()  # the job's detail, with its output
    until(page, lambda: "<b>x</b>" in (text(page, "#job-stdout") or ""), what="the job's output")
    assert page.execute_script("return document.querySelectorAll('#job-detail b, #job-detail img').length") == 0


def test_a_failed_steps_reason_shows(page, server):
    started, token = server
    # an ssh cluster whose host refuses: its create step fails, saying so (as in test_clusters.py)
    assert started.request("POST", f"{PROJECT}/credentials", {"name": "throwaway", "kind": "ssh_key",
                                                               "private_key": new_private_key()}, token)[0] == 201
    go(page, started, "#/p/demo")
    until(page, lambda: shown(page, '[data-option="provider"]'), what="the create form")
    fill(page, "#create-name", "broken")
    fill(page, '[data-option="nodes"]', 1)
    choose(page, '[data-option="provider"]', "ssh")
    fill(page, '[data-option="hosts"]', "127.0.0.1:1")
    choose(page, '[data-option="ssh_credential"]', "throwaway")  # the project's credentials are the choices
    find(page, "#create-submit").click()
    until(page, lambda: text(page, cluster_row("broken", "state")) == "failed", timeout=120,
          what="the cluster to fail")
    reason = text(page, cluster_row("broken", "state_reason"))
    assert "unreachable" in reason and "retry" in reason
    go(page, started, "#/p/demo/c/broken")
    until(page, lambda: "unreachable" in (text(page, '#cluster-detail [data-field="state_reason"]') or ""),
          what="the reason in the cluster's detail")
    until(page, lambda: shown(page, '[data-test="run-output-open"]'), what="the runs")
    find(page, '[data-test="run-output-open"]').click()
    until(page, lambda: page.execute_script("return document.querySelector('#run-output').dataset.done") == "true",
          what="the run's output")
    assert "UNREACHABLE" in text(page, "#run-output")
    find(page, "#cluster-retry").click()  # runs the step again: a second run, failing alike
    until(page, lambda: page.execute_script("return document.querySelectorAll('tr[data-test=\"run-row\"]').length")
          == 2, what="the retry's run")
    until(page, lambda: text(page, '#cluster-detail [data-field="state"]') == "failed", timeout=120,
          what="the retry to fail again")
    assert still_the_same_page(page)


def test_an_error_of_the_api_is_shown_with_its_message(page, server):
    go(page, server[0], "#/p/demo")
    until(page, lambda: shown(page, "#create-name"), what="the create form")
    fill(page, "#create-name", "web")  # taken
    fill(page, '[data-option="nodes"]', 1)
    find(page, "#create-submit").click()
    until(page, lambda: "web" in (text(page, '#create-form [data-test="form-error"]') or ""),
          what="the conflict's message")


def test_the_page_says_when_it_lost_the_stream_and_catches_up(page, server):
    started, token = server
    go(page, started, "#/p/demo/c/web")
    until(page, lambda: text(page, count_cell("", "succeeded")) is not None, what="the job counts")
    started.stop()
    until(page, lambda: shown(page, "#stream-lost"), what="the lost stream's banner")
    assert text(page, "#stream-lost") == "Lost the live event stream; reconnecting…"
    started.start()
    until(page, lambda: not shown(page, "#stream-lost") and
          page.execute_script("return document.body.dataset.stream") == "open", timeout=60,
          what="the stream to open again")
    status, _, _ = started.request("POST", f"{PROJECT}/clusters/web/jobs", {"cmd": "true", "rep_grp": "after"},
                                   token)
    assert status == 201
    until(page, lambda: text(page, count_cell("after", "succeeded")) == "1", timeout=60,
          what="the counts to move after the restart")
    assert still_the_same_page(page)


def test_how_long_events_take_to_show(page, capsys):
    latencies = sorted(entry["ms"] for entry in page.execute_script("return window.provisioner.latencies"))
    assert latencies, "no event reached the page"
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    with capsys.disabled():
        print(f"\nstatus page: {len(latencies)} events, commit to page p50 {latencies[len(latencies) // 2]} ms, "
              f"p95 {p95} ms, max {latencies[-1]} ms")


def test_a_reloaded_page_is_still_signed_in_and_learns_its_csrf_token_again(page, server):
    page.refresh()
    until(page, lambda: page.execute_script("return document.body.dataset.signedIn") == "true",
          what="the reloaded page to find its session")
    page.execute_script("window.notReloaded = true;")
    assert not shown(page, "#signin-form")
    go(page, server[0], "#/p/demo/c/web")
    until(page, lambda: text(page, count_cell("", "succeeded")) is not None, what="the job counts")
    fill(page, "#job-cmd", "true")
    fill(page, "#job-count", 2)
    fill(page, "#job-rep-grp", "reloaded")
    find(page, "#job-submit").click()  # a change: it needs the CSRF token GET /v1/auth/session gave again
    until(page, lambda: text(page, count_cell("reloaded", "succeeded")) == "2", timeout=60,
          what="the reloaded page's jobs")


def test_scale_and_tear_down(page, server):
    fill(page, "#scale-nodes", 2)
    find(page, '#scale-form button[type="submit"]').click()
    until(page, lambda: page.execute_script("return document.querySelectorAll('tr[data-test=\"node-row\"]').length")
          == 2 and text(page, '#cluster-detail [data-field="state"]') == "active", timeout=120, what="two nodes")
    find(page, "#cluster-teardown").click()
    assert text(page, "#cluster-teardown") == "Click again to tear down"
    find(page, "#cluster-teardown").click()
    until(page, lambda: text(page, '#cluster-detail [data-field="state"]') == "deleted", timeout=120,
          what="the cluster to be torn down")


def test_sign_out(page, server):
    started, _ = server
    cookie = session_cookie(page)
    assert http(started, "GET", "/v1/auth/session", headers={"Cookie": f"provisioner_session={cookie}"})[0] == 200
    find(page, "#signout").click()
    until(page, lambda: shown(page, "#signin-form") and not shown(page, "#app"), what="the sign-in form")
    assert session_cookie(page) is None
    old = {"Cookie": f"provisioner_session={cookie}"}
    assert http(started, "GET", "/v1/auth/session", headers=old)[0] == 401
    assert http(started, "GET", "/v1/projects", headers=old)[0] == 401
    assert still_the_same_page(page)
