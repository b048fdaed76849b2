"""Settings the README documents do what it says: token lifetimes, and the
start-up refusal of a waitress too small for the polls and streams it may
hold."""
import subprocess
from datetime import datetime, timezone

import pytest
import webtest

from pyramid_app import main
from tests.conftest import ADMIN_PASSWORD, assert_error, close, settings_for
from tests.server import PSERVE, REPOSITORY, free_port


@pytest.fixture
def short_tokens(tmp_path):
    app = main({}, **settings_for(tmp_path / "short", **{"provisioner.token_expiration": "600",
                                                         "provisioner.token_max_expiration": "3600"}))
    yield webtest.TestApp(app)
    close(app)


def lifetime(response):
    """Seconds from now until the token's expires_at."""
    expires_at = datetime.fromisoformat(response.json["expires_at"].replace("Z", "+00:00"))
    return (expires_at - datetime.now(timezone.utc)).total_seconds()


def sign_in(testapp, **extra):
    return testapp.post_json("/v1/auth/token", dict(username="admin", password=ADMIN_PASSWORD, **extra),
                             status=201)


def test_a_token_without_expiration_lives_token_expiration(short_tokens, testapp):
    assert 598 <= lifetime(sign_in(short_tokens)) <= 600
    assert 86398 <= lifetime(sign_in(testapp)) <= 86400  # the default: one day


def test_a_token_asked_for_longer_than_the_maximum_gets_the_maximum(short_tokens):
    assert 3598 <= lifetime(sign_in(short_tokens, expiration=7200)) <= 3600
    assert 58 <= lifetime(sign_in(short_tokens, expiration=60)) <= 60
    # past 30 days the request itself is wrong, whatever the settings say
    assert_error(short_tokens.post_json("/v1/auth/token", {"username": "admin", "password": ADMIN_PASSWORD,
                                                           "expiration": 2592001}, status=400), 400)


def test_a_default_longer_than_the_maximum_is_cut_to_it(tmp_path):
    app = main({}, **settings_for(tmp_path, **{"provisioner.token_expiration": "7200",
                                                         "provisioner.token_max_expiration": "3600"}))
    try:
        assert 3598 <= lifetime(sign_in(webtest.TestApp(app))) <= 3600
    finally:
        close(app)


def test_token_lifetimes_past_thirty_days_are_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="provisioner.token_max_expiration .* between 1 and 2592000"):
        main({}, **settings_for(tmp_path, **{"provisioner.token_max_expiration": "2592001"}))


def test_pserve_refuses_more_held_threads_than_waitress_has(tmp_path):
    """development.ini gives waitress 16 threads: 12 agent polls and the 8
    default event streams could hold them all."""
    port = free_port()
    result = subprocess.run([str(PSERVE), str(REPOSITORY / "development.ini"), f"http_port={port}",
                             f"var_dir={tmp_path}"], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PROVISIONER_AGENT_POLLS": "12"})
    assert result.returncode != 0
    assert ("waitress has 16 threads, and provisioner.agent_polls (12) plus provisioner.event_streams (8) "
            "may hold 20 of them: raise `threads` in [server:main] above 20") in result.stderr
    assert "Serving on" not in result.stderr + result.stdout


def test_a_browser_session_lives_no_longer_than_the_maximum(short_tokens):
    response = short_tokens.post_json("/v1/auth/session", {"username": "admin", "password": ADMIN_PASSWORD},
                                      status=201)
    assert 3598 <= lifetime(response) <= 3600  # not the 12 hours of a session
    assert "Max-Age=3600" in response.headers["Set-Cookie"]
