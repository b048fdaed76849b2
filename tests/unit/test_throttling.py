"""The sign-in throttling rule (pyramid_app/throttling.py), with a fake clock."""
from types import SimpleNamespace

import pytest

from pyramid_app import throttling
from pyramid_app.settings import parse_networks
from pyramid_app.throttling import (ADDRESS_FREE, FORGET_SECONDS, MAX_DELAY, PAIR_FREE, USER_FREE, WARN_AT,
                                    WARN_EVERY, SignInThrottle, back_off, client_address, retry_after)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def throttle(clock):
    return SignInThrottle(clock=clock)


def fail(throttle, user, address, times=1):
    return [throttle.failed(user, address) for _ in range(times)]


def test_the_free_failures_then_a_doubling_back_off_capped_at_a_minute(throttle, clock):
    waits = []
    for _ in range(PAIR_FREE + 10):
        waits.append(throttle.wait("admin", "10.0.0.1"))
        clock.advance(waits[-1])  # the client waits exactly as long as told
        fail(throttle, "admin", "10.0.0.1")
    assert waits[:PAIR_FREE] == [0] * PAIR_FREE
    assert waits[PAIR_FREE:] == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert back_off(10_000, PAIR_FREE) == MAX_DELAY  # no overflow, still capped


def test_the_wait_counts_down_and_a_throttled_attempt_counts_nothing(throttle, clock):
    fail(throttle, "admin", "10.0.0.1", PAIR_FREE + 2)  # next wait: 4 s
    assert throttle.wait("admin", "10.0.0.1") == 4
    clock.advance(1.5)
    assert throttle.wait("admin", "10.0.0.1") == 2.5
    assert retry_after(2.5) == 3 and retry_after(0.01) == 1
    clock.advance(2.5)
    assert throttle.wait("admin", "10.0.0.1") == 0


def test_failures_are_forgotten_after_a_quarter_of_an_hour_without_one(throttle, clock):
    fail(throttle, "admin", "10.0.0.1", PAIR_FREE + 8)
    clock.advance(FORGET_SECONDS - 1)
    assert throttle.wait("admin", "10.0.0.1") == 0  # the wait (60 s) is over, the record is not:
    fail(throttle, "admin", "10.0.0.1")  # one more failure, and the back-off is at its cap still
    assert throttle.wait("admin", "10.0.0.1") == MAX_DELAY
    clock.advance(FORGET_SECONDS)
    assert throttle.wait("admin", "10.0.0.1") == 0
    assert len(throttle) == 0
    fail(throttle, "admin", "10.0.0.1", PAIR_FREE - 1)
    assert throttle.wait("admin", "10.0.0.1") == 0  # the free allowance is whole again


def test_a_success_clears_the_pair(throttle, clock):
    fail(throttle, "admin", "10.0.0.1", PAIR_FREE)
    assert throttle.wait("admin", "10.0.0.1") == 1
    clock.advance(1)
    throttle.succeeded("admin", "10.0.0.1")
    fail(throttle, "admin", "10.0.0.1", PAIR_FREE - 1)
    assert throttle.wait("admin", "10.0.0.1") == 0


def test_a_legitimate_user_from_another_address_is_not_slowed(throttle, clock):
    fail(throttle, "admin", "203.0.113.9", PAIR_FREE + 20)
    assert throttle.wait("admin", "203.0.113.9") == MAX_DELAY
    assert throttle.wait("admin", "10.0.0.1") == 0


def test_the_user_names_back_off_slows_failing_addresses_only(throttle, clock):
    # a distributed attack: many addresses, a few failures each (under the pair's allowance)
    attackers = [f"198.51.100.{n}" for n in range(USER_FREE // 2 + 1)]
    for address in attackers:
        fail(throttle, "admin", address, 2)
    # 52 failures of the name: its back-off (1 s at 50, doubling) for each failing address
    assert throttle.wait("admin", attackers[0]) == back_off(2 * len(attackers), USER_FREE) == 4
    for n in range(10):
        fail(throttle, "admin", f"198.51.101.{n}")
    assert throttle.wait("admin", attackers[0]) == MAX_DELAY  # capped
    # an address that has not been failing for the name, and one that signed in before, are not slowed
    assert throttle.wait("admin", "10.0.0.1") == 0
    throttle.succeeded("admin", "10.0.0.2")
    fail(throttle, "admin", "10.0.0.2")
    assert throttle.wait("admin", "10.0.0.2") == 0
    # another name is not slowed for the attacking addresses either
    assert throttle.wait("alice", attackers[0]) == 0
    # the name's back-off counts from each address's own last failure: no race between addresses
    clock.advance(MAX_DELAY)
    assert throttle.wait("admin", attackers[0]) == 0


def test_the_address_limit_counts_across_user_names(throttle, clock):
    for n in range(ADDRESS_FREE):
        assert throttle.wait(f"user-{n}", "203.0.113.9") == 0
        fail(throttle, f"user-{n}", "203.0.113.9")
    assert throttle.wait("yet-another", "203.0.113.9") == 1  # hard: for any name
    assert throttle.wait("yet-another", "10.0.0.1") == 0
    # a name that signed in from that address before keeps working there (one NAT, many people)
    throttle.succeeded("alice", "203.0.113.9")
    assert throttle.wait("alice", "203.0.113.9") == 0


def test_the_warning_is_stable_and_written_at_most_once_a_minute(throttle, clock):
    messages = [message for n in range(WARN_AT + 30) for message in fail(throttle, "admin", f"10.0.{n}.1")]
    written = [message for message in messages if message]
    assert written == [throttling.warning_message("admin")]
    assert messages.index(written[0]) == WARN_AT - 1
    assert "'admin'" in written[0] and "slowed down" in written[0]
    clock.advance(WARN_EVERY)
    assert fail(throttle, "admin", "10.9.9.9") == [written[0]]  # the same text: it counts up
    assert fail(throttle, "admin", "10.9.9.9") == [None]
    assert fail(throttle, "alice", "10.9.9.9", WARN_AT - 1)[-1] is None


def test_memory_is_bounded(clock):
    throttle = SignInThrottle(clock=clock, max_records=1000)
    for n in range(5000):
        throttle.failed(f"user-{n}", f"10.{n // 256 % 256}.{n % 256}.1")
        throttle.succeeded(f"user-{n}", f"10.0.{n % 256}.2")
    assert len(throttle._failures) <= 1000 and len(throttle._successes) <= 1000
    # the most recent stay
    assert ("user", "user-4999") in throttle._failures


def request(remote_addr=None, forwarded=None):
    environ = {} if remote_addr is None else {"REMOTE_ADDR": remote_addr}
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    return SimpleNamespace(environ=environ, headers=headers)


def test_the_client_address_is_remote_addr_unless_a_trusted_proxy_forwards():
    proxies = parse_networks("10.0.0.0/8, 192.0.2.7")
    assert client_address(request("203.0.113.9", "1.2.3.4")) == "203.0.113.9"  # no trusted proxies
    assert client_address(request("203.0.113.9", "1.2.3.4"), proxies) == "203.0.113.9"  # not a proxy
    assert client_address(request("192.0.2.7", "1.2.3.4"), proxies) == "1.2.3.4"
    # the rightmost hop that is no trusted proxy: what the client wrote itself is left of it
    assert client_address(request("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.1.1.1"), proxies) == "1.2.3.4"
    assert client_address(request("10.0.0.1", "garbage"), proxies) == "10.0.0.1"
    assert client_address(request("10.0.0.1"), proxies) == "10.0.0.1"
    # IPv6 by its /64, IPv4-mapped as IPv4; no REMOTE_ADDR at all: no network, no throttling
    assert client_address(request("2001:db8::1")) == client_address(request("2001:db8::ffff")) == "2001:db8::/64"
    assert client_address(request("::ffff:203.0.113.9")) == "203.0.113.9"
    assert client_address(request("localhost")) == "localhost"
    assert client_address(request("")) == throttling.UNKNOWN_ADDRESS
    assert client_address(request()) is None
