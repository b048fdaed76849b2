"""The address rule of webhooks (outbound.py): which addresses are
refused, the allowance, what is checked at registration, and that a
delivery connects to the address it vetted (no DNS rebinding), sends the
URL's Host, checks TLS certificates against the URL's host and follows no
redirect."""
import datetime
import hashlib
import hmac
import ipaddress
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pyramid_app import settings
from pyramid_app import outbound
from pyramid_app.outbound import Refused, parse_url, post, refusal, registration_refusal
from pyramid_app.runner import webhooks

LOCAL = (ipaddress.ip_network("127.0.0.0/8"),)
NOBODY = frozenset()  # no own addresses: the tables below do not depend on this host


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "127.0.0.1 is loopback"),
    ("127.255.0.9", "127.255.0.9 is loopback"),
    ("::1", "::1 is loopback"),
    ("169.254.169.254", "169.254.169.254 is link-local (the cloud's metadata service)"),
    ("169.254.1.2", "169.254.1.2 is link-local"),
    ("fe80::1", "fe80::1 is link-local"),
    ("febf::1", "febf::1 is link-local"),
    ("0.0.0.0", "0.0.0.0 is unspecified"),
    ("0.1.2.3", "0.1.2.3 is unspecified"),
    ("::", ":: is unspecified"),
    ("224.0.0.1", "224.0.0.1 is multicast"),
    ("239.255.255.250", "239.255.255.250 is multicast"),
    ("ff02::1", "ff02::1 is multicast"),
    ("255.255.255.255", "255.255.255.255 is broadcast"),
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1 (IPv4-mapped 127.0.0.1) is loopback"),
    ("::ffff:169.254.169.254", "::ffff:169.254.169.254 (IPv4-mapped 169.254.169.254) is link-local (the "
                               "cloud's metadata service)"),
    ("::ffff:0.0.0.0", "::ffff:0.0.0.0 (IPv4-mapped 0.0.0.0) is unspecified"),
])
def test_refused_addresses(address, why):
    assert refusal(ipaddress.ip_address(address), (), NOBODY) == why


@pytest.mark.parametrize("address", ["93.184.216.34", "10.1.2.3", "192.168.0.10", "172.16.5.4", "2001:db8::1",
                                     "fd00::5", "::ffff:93.184.216.34", "fec0::1"])
def test_other_addresses_are_not_refused(address):
    assert refusal(ipaddress.ip_address(address), (), NOBODY) is None


def test_the_servers_own_addresses_are_refused():
    own = frozenset({ipaddress.ip_address("192.0.2.7"), ipaddress.ip_address("2001:db8::7")})
    assert refusal(ipaddress.ip_address("192.0.2.7"), (), own) == "192.0.2.7 is an address of this server"
    assert refusal(ipaddress.ip_address("::ffff:192.0.2.7"), (), own).endswith("is an address of this server")
    assert refusal(ipaddress.ip_address("2001:db8::7"), (), own) == "2001:db8::7 is an address of this server"
    assert refusal(ipaddress.ip_address("192.0.2.8"), (), own) is None


def test_this_hosts_addresses_are_found():
    found = outbound.own_addresses()
    assert found and all(isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)) for address in found)
    for address in found:
        assert refusal(address) is not None, address
        if not (address.is_loopback or address.is_link_local):
            assert refusal(address).endswith("is an address of this server")


def test_allowed_networks_are_allowed_mapped_or_not_and_nothing_else():
    assert refusal(ipaddress.ip_address("127.0.0.1"), LOCAL, NOBODY) is None
    assert refusal(ipaddress.ip_address("::ffff:127.0.0.1"), LOCAL, NOBODY) is None
    assert refusal(ipaddress.ip_address("::1"), LOCAL, NOBODY) == "::1 is loopback"
    assert refusal(ipaddress.ip_address("169.254.169.254"), LOCAL, NOBODY).startswith("169.254.169.254 is")
    own = frozenset({ipaddress.ip_address("192.0.2.7")})
    assert refusal(ipaddress.ip_address("192.0.2.7"), (ipaddress.ip_network("192.0.2.0/24"),), own) is None


def test_the_setting_is_a_list_of_networks():
    assert settings.parse_networks("") == ()
    assert settings.parse_networks(" 127.0.0.0/8 , ::1/128,10.0.0.5") == (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"), ipaddress.ip_network("10.0.0.5/32"))
    loaded = settings.load({}, environ={"PROVISIONER_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8"})
    assert loaded["provisioner.webhook_allowed_networks"] == (ipaddress.ip_network("10.0.0.0/8"),)
    assert settings.load({}, environ={})["provisioner.webhook_allowed_networks"] == ()
    for bad in ("10.0.0.0/33", "localhost", "10.0.0.0/8;11.0.0.0/8"):
        with pytest.raises(ValueError, match="provisioner.webhook_allowed_networks"):
            settings.load({"provisioner.webhook_allowed_networks": bad}, environ={})


def test_urls_are_parsed_or_refused_saying_why():
    assert parse_url("http://example.com") == ("http", "example.com", 80, "/")
    assert parse_url("https://Example.com:8443/a/b?c=d#frag") == ("https", "example.com", 8443, "/a/b?c=d")
    assert parse_url("http://[2001:db8::1]:81/x") == ("http", "2001:db8::1", 81, "/x")
    for url, why in [("ftp://example.com/", "http:// or https://"), ("example.com/x", "http:// or https://"),
                     ("http:///x", "must name a host"), ("http://u:p@example.com/", "no user name"),
                     ("http://example.com:0/", "port 0"), ("http://example.com:65536/", "not a URL"),
                     ("http://[::1/", "not a URL"), ("http://exämple.com/", "ASCII"),
                     ("http://example.com/\r\nX: y", "ASCII"), ("http://e.com/" + "a" * 2040, "2048")]:
        with pytest.raises(ValueError, match=why):
            parse_url(url)


def fake_resolver(monkeypatch, answers):
    """getaddrinfo answering `answers[name]` (a list of addresses, or a list
    of such lists, one per call in turn); other names as before. The calls
    made, by name."""
    real = socket.getaddrinfo
    calls = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        answer = answers[host]
        if answer and isinstance(answer[0], list):
            answer = answer[min(calls.count(host), len(answer)) - 1]
        if not answer:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, port, 0, 0) if ":" in address else (address, port)) for address in answer]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


def test_registration_refuses_literals_and_names_of_refused_addresses(monkeypatch):
    fake_resolver(monkeypatch, {"metadata.example": ["169.254.169.254"], "mixed.example": ["93.184.216.34", "::1"],
                                "fine.example": ["93.184.216.34"], "gone.example": []})
    assert registration_refusal("http://127.0.0.1/", ()).startswith("127.0.0.1 is loopback; an admin may allow")
    assert registration_refusal("http://127.0.0.1/", LOCAL) is None
    assert registration_refusal("http://metadata.example/", LOCAL).startswith(
        "metadata.example resolves to 169.254.169.254 is link-local")
    assert registration_refusal("http://mixed.example/", ()).startswith("mixed.example resolves to ::1 is loopback")
    assert registration_refusal("http://fine.example/", ()) is None
    assert registration_refusal("http://gone.example/", ()) is None  # it may resolve later: checked then


def test_a_name_that_resolves_too_slowly_counts_as_not_resolving_now(monkeypatch):
    monkeypatch.setattr(outbound, "REGISTRATION_RESOLVE_SECONDS", 0.1)
    real = socket.getaddrinfo

    def slow(host, *args, **kwargs):
        if host == "slow.example":
            time.sleep(1)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", slow)
    started = time.monotonic()
    assert registration_refusal("http://slow.example/", ()) is None
    assert time.monotonic() - started < 0.8


class Receiver:
    def __init__(self, status=200, headers=(), tls=None):
        self.requests = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.path, dict(self.headers), body))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


HEADERS = {"Content-Type": "application/json"}


def test_a_delivery_connects_to_the_address_it_vetted_with_the_urls_host(monkeypatch, receiver):
    """The name resolves to 127.0.0.1 when it is checked and to the cloud's
    metadata address after: it is resolved once, and the connection goes to
    the address that was checked."""
    calls = fake_resolver(monkeypatch, {"rebind.example": [["127.0.0.1"], ["169.254.169.254"]]})
    assert post(f"http://rebind.example:{receiver.port}/hook?x=1", b"{}", HEADERS, LOCAL) == 200
    assert calls == ["rebind.example"]
    [(path, headers, body)] = receiver.requests
    assert (path, headers["Host"], body) == ("/hook?x=1", f"rebind.example:{receiver.port}", b"{}")


def test_a_delivery_to_a_name_with_any_refused_address_sends_nothing(monkeypatch, receiver):
    fake_resolver(monkeypatch, {"two.example": ["127.0.0.1", "169.254.169.254"]})
    with pytest.raises(Refused, match=r"^refused: two.example resolves to 169.254.169.254 is link-local"):
        post(f"http://two.example:{receiver.port}/", b"{}", HEADERS, LOCAL)
    assert receiver.requests == []


def test_a_name_allowed_when_registered_is_refused_once_the_allowance_is_gone(receiver):
    url = f"http://localhost:{receiver.port}/"
    assert registration_refusal(url, LOCAL) is None
    assert post(url, b"{}", HEADERS, LOCAL) == 200
    with pytest.raises(Refused, match=r"^refused: localhost resolves to 127.0.0.1 is loopback"):
        post(url, b"{}", HEADERS, ())
    with pytest.raises(Refused, match=r"^refused: ::ffff:127.0.0.1 \(IPv4-mapped 127.0.0.1\) is loopback"):
        post(f"http://[::ffff:127.0.0.1]:{receiver.port}/", b"{}", HEADERS, ())
    assert len(receiver.requests) == 1


def test_redirects_are_not_followed():
    server = Receiver(status=302, headers=[("Location", "http://169.254.169.254/latest/meta-data/")])
    try:
        assert post(f"http://127.0.0.1:{server.port}/", b"{}", HEADERS, LOCAL) == 302
        assert len(server.requests) == 1
    finally:
        server.stop()


def certificate_for(tmp_path, name):
    """A self-signed certificate for DNS name `name`; (its file, the key's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_https_checks_the_certificate_against_the_urls_host(tmp_path, monkeypatch):
    cert_file, key_file = certificate_for(tmp_path, "hooks.example")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = Receiver(tls=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))  # the default context trusts it
    fake_resolver(monkeypatch, {"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
    try:
        assert post(f"https://hooks.example:{server.port}/in", b"{}", HEADERS, LOCAL) == 200
        assert server.requests[0][1]["Host"] == f"hooks.example:{server.port}"
        for host in ("other.example", "127.0.0.1"):  # the same server, under a name its certificate is not for
            with pytest.raises(ssl.SSLCertVerificationError):
                post(f"https://{host}:{server.port}/in", b"{}", HEADERS, LOCAL)
        assert len(server.requests) == 1
    finally:
        server.stop()


def test_failures_are_described():
    assert outbound.describe_failure(TimeoutError("timed out")) == "timeout: no answer within 10 s"
    assert outbound.describe_failure(ConnectionRefusedError(111, "Connection refused")) == "connection refused"
    assert outbound.describe_failure(Refused("refused: x")) == "refused: x"


def test_the_signature_is_the_hmac_of_the_body_and_the_back_off_doubles_up_to_five_minutes():
    body = b'{"id":1}'
    assert outbound.signature("s" * 20, body) == "sha256=" + hmac.new(b"s" * 20, body, hashlib.sha256).hexdigest()
    assert [webhooks.backoff(attempt) for attempt in range(1, 12)] == \
        [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
