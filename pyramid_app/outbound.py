"""Requests this service sends out (webhook deliveries), and where they may
go.

No request forgery: a webhook is never sent to a loopback, link-local
(169.254.169.254 is the cloud's metadata), unspecified or multicast
address, nor to one of this server's own, unless the network is one of
provisioner.webhook_allowed_networks. The host is resolved at every attempt,
every address it resolves to is vetted, and the connection is opened to a
vetted address itself (the Host header and TLS's server name are the URL's
host), so that a DNS answer that changes between the check and the connect
cannot send it elsewhere. Redirects are not followed."""
import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

TIMEOUT_SECONDS = 10.0  # for a receiver to answer
MAX_URL_CHARS = 2048
MAX_ANSWER_BYTES = 64 * 1024  # read of a receiver's answer, then the connection is closed
OWN_ADDRESSES_SECONDS = 60.0  # how long the server's own addresses are taken as known
REGISTRATION_RESOLVE_SECONDS = 3.0  # a name that takes longer to resolve counts as not resolving (yet)
SETTING = "provisioner.webhook_allowed_networks"

THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host on this network": 0.0.0.0 reaches the loopback
BROADCAST = ipaddress.ip_address("255.255.255.255")


class Refused(Exception):
    """An address a webhook may not be sent to."""


# -- addresses ---------------------------------------------------------------


_own = {"until": 0.0, "addresses": frozenset()}
_own_lock = threading.Lock()


def _own_ipv4():
    """This host's IPv4 addresses: the local routes of the kernel's table
    (/proc/net/fib_trie lists each as `|-- <address>` then `/32 host LOCAL`)."""
    found, previous = set(), None
    for line in Path("/proc/net/fib_trie").read_text().splitlines():
        text = line.strip()
        if text.startswith("|-- "):
            previous = text[4:]
        elif text.startswith("/32 host LOCAL") and previous:
            found.add(ipaddress.IPv4Address(previous))
    return found


def _own_ipv6():
    return {ipaddress.IPv6Address(int(line.split()[0], 16))
            for line in Path("/proc/net/if_inet6").read_text().splitlines() if line.strip()}


def _own_outbound():
    """Where the /proc files are not: the addresses this host sends from
    (a UDP socket's connect sends nothing) and those of its name."""
    found = set()
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect((probe, 9))
                found.add(ipaddress.ip_address(sock.getsockname()[0].split("%")[0]))
        except OSError:
            pass
    try:
        for *_, sockaddr in socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP):
            found.add(ipaddress.ip_address(sockaddr[0].split("%")[0]))
    except (OSError, ValueError):
        pass
    return found


def own_addresses():
    """The addresses of this server's interfaces (looked up again every
    minute)."""
    with _own_lock:
        if time.monotonic() < _own["until"]:
            return _own["addresses"]
    found = set()
    for source in (_own_ipv4, _own_ipv6, _own_outbound):
        try:
            found |= source()
        except (OSError, ValueError):
            pass
    with _own_lock:
        _own.update(addresses=frozenset(found), until=time.monotonic() + OWN_ADDRESSES_SECONDS)
    return _own["addresses"]


def refusal(address, allowed=(), own=None):
    """Why a webhook may not be sent to `address` (an ip_address), as
    "<address> is loopback", or None. An IPv4-mapped IPv6 address is judged
    as the IPv4 address it maps to; `allowed` networks are always allowed."""
    address = ipaddress.ip_address(address)
    effective = address.ipv4_mapped if address.version == 6 and address.ipv4_mapped else address
    if any(candidate in network for network in allowed for candidate in {address, effective}
           if candidate.version == network.version):
        return None
    shown = str(address) if effective is address else f"::ffff:{effective} (IPv4-mapped {effective})"
    if effective.is_loopback:
        why = "loopback"
    elif effective.is_link_local:
        why = "link-local" + (" (the cloud's metadata service)" if str(effective) == "169.254.169.254" else "")
    elif effective.is_unspecified or (effective.version == 4 and effective in THIS_NETWORK):
        why = "unspecified"
    elif effective.is_multicast:
        why = "multicast"
    elif effective == BROADCAST:
        why = "broadcast"
    else:
        own = own_addresses() if own is None else own
        if effective not in own and address not in own:
            return None
        why = "an address of this server"
    return f"{shown} is {why}"


def allowance_hint():
    return f"an admin may allow its network with {SETTING}"


def parse_url(url):
    """(scheme, host, port, request target) of a webhook's URL, or
    ValueError saying why it is not one."""
    if len(url) > MAX_URL_CHARS:
        raise ValueError(f"must be at most {MAX_URL_CHARS} characters")
    if any(not 33 <= ord(char) <= 126 for char in url):
        raise ValueError("must be ASCII without spaces or control characters (%-escape the rest, and write a "
                         "host name of other characters in punycode)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not url.lower().startswith(f"{parts.scheme}://"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must carry no user name or password (they would not be sent); put a token in the "
                         "path or query, or check the signature")
    if port == 0:
        raise ValueError("has port 0")
    port = port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port, target


def literal_address(host):
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def resolve(host, port):
    """[(family, sockaddr, ip_address)] of every address `host` resolves
    to; OSError when it resolves to none."""
    found = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                        proto=socket.IPPROTO_TCP):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        entry = (family, sockaddr, ipaddress.ip_address(sockaddr[0].split("%")[0]))
        if entry not in found:
            found.append(entry)
    if not found:
        raise OSError(f"{host} resolves to no IP address")
    return found


def vetted_addresses(host, port, allowed):
    """Where a webhook to `host` may connect: every address it resolves to,
    or Refused naming one that is not allowed."""
    addresses = resolve(host, port)
    for _, _, address in addresses:
        why = refusal(address, allowed)
        if why is not None:
            named = "" if literal_address(host) is not None else f"{host} resolves to "
            raise Refused(f"refused: {named}{why}; {allowance_hint()}")
    return [(family, sockaddr) for family, sockaddr, _ in addresses]


def _resolve_within(host, port, seconds):
    """What `host` resolves to, or [] when it does not, or not within
    `seconds`: a slow resolver does not hold a request's thread (the lookup
    goes on in a thread of its own)."""
    found = []

    def look():
        try:
            found.extend(resolve(host, port))
        except (OSError, UnicodeError, ValueError):
            pass

    looking = threading.Thread(target=look, name="webhook-resolve", daemon=True)
    looking.start()
    looking.join(seconds)
    return [] if looking.is_alive() else found


def registration_refusal(url, allowed):
    """Why a webhook to `url` may not be registered, or None: an IP address
    that is refused, or a name that resolves to one. A name that does not
    resolve now is accepted (every delivery resolves it again)."""
    _, host, port, _ = parse_url(url)
    literal = literal_address(host)
    if literal is not None:
        why = refusal(literal, allowed)
        return None if why is None else f"{why}; {allowance_hint()}"
    addresses = _resolve_within(host, port, REGISTRATION_RESOLVE_SECONDS)
    for _, _, address in addresses:
        why = refusal(address, allowed)
        if why is not None:
            return f"{host} resolves to {why}; {allowance_hint()}"
    return None


# -- one request ----------------------------------------------------------------


class _Vetted:
    """Connects to the vetted addresses, in turn, instead of resolving the
    host again."""

    def _open_socket(self):
        failure = OSError(f"no address to connect to for {self.host}")
        for family, sockaddr in self.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.settimeout(self.timeout)
                sock.connect(sockaddr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as exc:
                sock.close()
                failure = exc
        raise failure


class VettedHTTPConnection(_Vetted, http.client.HTTPConnection):
    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self):
        self.sock = self._open_socket()


class VettedHTTPSConnection(_Vetted, http.client.HTTPSConnection):
    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self):
        # the certificate is checked against the URL's host, not the address
        self.sock = ssl.create_default_context().wrap_socket(self._open_socket(), server_hostname=self.host)


def signature(secret, body):
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def post(url, body, headers, allowed, timeout=None):
    """POST `body` to `url` (vetted as above); the answer's status. Refused,
    OSError (timeouts, refused connections, TLS) or http.client's errors
    when there is none."""
    scheme, host, port, target = parse_url(url)
    addresses = vetted_addresses(host, port, allowed)
    kind = VettedHTTPSConnection if scheme == "https" else VettedHTTPConnection
    connection = kind(host, port, addresses, TIMEOUT_SECONDS if timeout is None else timeout)
    try:
        connection.request("POST", target, body=body, headers=headers)
        answer = connection.getresponse()
        answer.read(MAX_ANSWER_BYTES)
        return answer.status
    finally:
        connection.close()


def describe_failure(exc):
    if isinstance(exc, Refused):
        return str(exc)
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"timeout: no answer within {TIMEOUT_SECONDS:g} s"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"the host does not resolve: {exc.strerror or exc}"
    if isinstance(exc, http.client.HTTPException):
        return f"not an HTTP answer: {type(exc).__name__} {exc}".strip()
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
