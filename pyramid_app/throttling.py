"""Sign-in throttling: failed sign-ins (POST /v1/auth/token and
POST /v1/auth/session) slow further guesses down, without letting an
attacker lock a real user out.

Failures are counted under three keys, each with its own free allowance and
a doubling back-off past it (1 s, 2 s, 4 s ... capped at 60 s, measured from
the key's last failure):

- the pair (user name, client address), hard: 5 free failures, then the
  back-off, for every attempt of that pair, right password or not;
- the client address, across user names, hard: 20 free failures, then the
  back-off, for every attempt from that address, except for user names that
  signed in successfully from it before (an office behind one NAT address
  keeps working while someone there guesses);
- the user name, across addresses, soft: past 50 failures its back-off
  applies, per address, to the addresses that have themselves failed for
  that name (and have no success history with it); an address that has not
  been failing for it, or one it signed in from before, is never slowed by
  this rule, so a correct password from there still succeeds while the name
  is under attack.

A record is forgotten after 15 minutes without a failure; a successful
sign-in clears its pair's record and is remembered as the pair's success
history for 30 days. A throttled attempt is answered 429 TooManyAttempts
with Retry-After (whole seconds) before the password is checked: it spends
no scrypt and counts as no failure. From 20 failures for an existing user
name, an admin's warning says the name is under attack, written at most once
a minute per name (the same message, which counts up).

The client address is REMOTE_ADDR; X-Forwarded-For is read only when the
peer is one of `provisioner.trusted_proxies` (then the rightmost address not
itself a trusted proxy). IPv6 addresses count by their /64, which one host
usually holds whole. Behind a proxy that is not named there, every client
counts as the proxy's address: name it. A call without REMOTE_ADDR at all
came through no network (an in-process WSGI call, as test clients make;
every HTTP server sets it, waitress to "localhost" on a unix socket) and is
not throttled.

State lives in the memory of each API process (one per app, in its
registry): nothing is written to the database per failed attempt. Several
API processes throttle each on their own, so behind a load balancer the
allowances are multiplied by their number, and a restart forgets them. At
most 100 000 failure records and 100 000 success records are kept; past it
the oldest (least recently failed or succeeded) are evicted.
"""
import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict


log = logging.getLogger(__name__)

PAIR_FREE = 5  # failures of one (user name, address) before its back-off
ADDRESS_FREE = 20  # failures of one address, across user names
USER_FREE = 50  # failures of one user name, across addresses
FIRST_DELAY = 1.0  # seconds; doubles with each further failure
MAX_DELAY = 60.0
FORGET_SECONDS = 15 * 60  # a record without a failure this long is forgotten
SUCCESS_SECONDS = 30 * 86400  # how long a pair's success history lasts
WARN_AT = 20  # failures of one user name that make a warning
WARN_EVERY = 60.0  # seconds between two writes of one name's warning
MAX_RECORDS = 100_000  # failure records, and as many success records

UNKNOWN_ADDRESS = "unknown"  # a request without REMOTE_ADDR


def back_off(failures, free):
    """Seconds the next attempt waits after `failures` failures, `free` of
    them free: 0, then FIRST_DELAY doubling up to MAX_DELAY."""
    if failures < free:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(failures - free, 32))


def warning_message(name):
    return (f"Sign-in: {WARN_AT} or more wrong passwords for user {name!r} within "
            f"{FORGET_SECONDS // 60} min; further attempts are being slowed down.")


class _Record:
    __slots__ = ("failures", "last", "warned")

    def __init__(self):
        self.failures = 0
        self.last = 0.0
        self.warned = None


class SignInThrottle:
    """The rule, over one process's memory; `clock` (seconds, monotonic) is
    injectable for tests. Thread-safe."""

    def __init__(self, clock=time.monotonic, max_records=MAX_RECORDS):
        self.clock = clock
        self.max_records = max_records
        self._lock = threading.Lock()
        self._failures = OrderedDict()  # key -> _Record, least recently failed first
        self._successes = OrderedDict()  # (user, address) -> time of the last success, oldest first

    def wait(self, user, address):
        """Seconds before `user` may try a password from `address` (0: now)."""
        with self._lock:
            now = self.clock()
            self._forget(now)
            pair = self._failures.get(("pair", user, address))
            waits = [0.0]
            if pair is not None:
                waits.append(pair.last + back_off(pair.failures, PAIR_FREE) - now)
            if (user, address) not in self._successes:
                by_address = self._failures.get(("address", address))
                if by_address is not None:
                    waits.append(by_address.last + back_off(by_address.failures, ADDRESS_FREE) - now)
                by_user = self._failures.get(("user", user))
                if pair is not None and by_user is not None:
                    # the name's back-off, from this address's own last failure
                    waits.append(pair.last + back_off(by_user.failures, USER_FREE) - now)
            return max(waits)

    def failed(self, user, address):
        """Count a wrong password; the warning to record about `user`, or
        None (at most one per WARN_EVERY seconds per name)."""
        with self._lock:
            now = self.clock()
            self._forget(now)
            for key in (("pair", user, address), ("address", address), ("user", user)):
                record = self._failures.pop(key, None) or _Record()
                record.failures += 1
                record.last = now
                self._failures[key] = record  # the most recent, last
            while len(self._failures) > self.max_records:
                self._failures.popitem(last=False)
            by_user = self._failures[("user", user)]
            if by_user.failures >= WARN_AT and (by_user.warned is None or now - by_user.warned >= WARN_EVERY):
                by_user.warned = now
                return warning_message(user)
            return None

    def succeeded(self, user, address):
        """A right password: the pair's failures are forgotten, and the pair
        has a success history."""
        with self._lock:
            now = self.clock()
            self._failures.pop(("pair", user, address), None)
            self._successes.pop((user, address), None)
            self._successes[(user, address)] = now
            while len(self._successes) > self.max_records:
                self._successes.popitem(last=False)

    def _forget(self, now):
        """Drop the records past their time; both dicts are oldest first."""
        while self._failures:
            key, record = next(iter(self._failures.items()))
            if now - record.last < FORGET_SECONDS:
                break
            del self._failures[key]
        while self._successes:
            key, at = next(iter(self._successes.items()))
            if now - at < SUCCESS_SECONDS:
                break
            del self._successes[key]

    def __len__(self):
        return len(self._failures) + len(self._successes)


def _parse(text):
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _key(address):
    """The address a client is counted as: IPv4 as it is, IPv6 by its /64."""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def client_address(request, trusted_proxies=()):
    """The address the request's client is counted as: REMOTE_ADDR, or,
    when that peer is a trusted proxy, the rightmost X-Forwarded-For hop
    that is not itself one. None for a call that came through no network
    (no REMOTE_ADDR at all: an in-process WSGI call); a peer that is not an
    IP address (a unix socket's) is counted by its text."""
    if "REMOTE_ADDR" not in request.environ:
        return None
    remote = str(request.environ["REMOTE_ADDR"] or "")
    peer = _parse(remote)
    if peer is None:
        return remote.strip()[:64] or UNKNOWN_ADDRESS
    address = peer
    if trusted_proxies:
        hops = [hop for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
        while any(address in network for network in trusted_proxies) and hops:
            hop = _parse(hops.pop())
            if hop is None:
                break  # a proxy forwarded no address: the proxy is the client
            address = hop
    return _key(address)


def retry_after(seconds):
    """Retry-After's whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


def record_warning(registry, message):
    """Add the admins' warning in a transaction of its own: the failed
    sign-in's transaction is aborted with its 401."""
    from .connections import database
    from .resources import app_root
    try:
        with database(registry).transaction() as connection:
            app_root(connection).warnings.add(None, message)
    except Exception:  # the sign-in is answered all the same
        log.exception("could not record the warning %r", message)


def throttle(request_or_registry):
    registry = getattr(request_or_registry, "registry", request_or_registry)
    return registry.sign_in_throttle


def includeme(config):
    config.registry.sign_in_throttle = SignInThrottle()
