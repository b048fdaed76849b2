"""Secrets sealed at rest (pyramid_app/sealing.py) and private keys read
for credentials (models/credential.py): real AES-GCM, real keys made by
ssh-keygen and by the cryptography package."""
import shutil
import stat
import subprocess

import pytest

from pyramid_app.errors import ValidationFailed
from pyramid_app.models.credential import read_private_key
from pyramid_app.sealing import (KeyRing, Sealed, SealingError, format_keys, new_key, open_values, parse_keys,
                                 seal_values)
from tests.conftest import new_private_key


def test_the_first_ring_is_written_for_its_owner_only(tmp_path):
    ring = KeyRing("", tmp_path)
    path = tmp_path / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing("", tmp_path).keys() == ring.keys()  # read again, not made anew


def test_a_sealed_value_opens_and_never_shows_its_text(tmp_path):
    ring = KeyRing("", tmp_path)
    sealed = ring.seal("the-secret-value")
    assert isinstance(sealed, Sealed) and b"the-secret-value" not in sealed.ciphertext
    assert "the-secret" not in repr(sealed)
    assert ring.open(sealed) == "the-secret-value"
    assert ring.open(ring.seal(b"\x00bytes")) == b"\x00bytes"
    assert ring.seal("x").nonce != ring.seal("x").nonce


def test_values_of_every_json_type_are_sealed_by_name(tmp_path):
    ring = KeyRing("", tmp_path)
    values = {"password": "pw", "pin": 1234, "list": ["a", "b"], "plain": "shown"}
    sealed = seal_values(ring, {"password", "pin", "list"}, values)
    assert sealed["plain"] == "shown" and all(isinstance(sealed[n], Sealed) for n in ("password", "pin", "list"))
    assert seal_values(ring, {"password"}, sealed)["password"] is sealed["password"]  # not sealed twice
    assert open_values(ring, sealed) == values


def test_another_key_or_a_changed_byte_does_not_open(tmp_path):
    (tmp_path / "a").mkdir()
    ring = KeyRing("", tmp_path / "a")
    other = KeyRing(format_keys([new_key()]), tmp_path)
    sealed = ring.seal("v")
    with pytest.raises(SealingError, match="no key of the ring"):
        other.open(sealed)
    tampered = Sealed(sealed.key_id, sealed.nonce, bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:])
    with pytest.raises(SealingError, match="does not open"):
        ring.open(tampered)


def test_a_configured_ring_seals_with_its_first_key_and_opens_with_any(tmp_path):
    old, new = new_key(), new_key()
    sealed_by_old = KeyRing(format_keys([old]), tmp_path).seal("v")
    both = KeyRing(f"{format_keys([new]).strip()},{format_keys([old]).strip()}", tmp_path)
    assert both.open(sealed_by_old) == "v"
    assert KeyRing(format_keys([new]), tmp_path).open(both.seal("w")) == "w"
    assert not (tmp_path / "secret.key").exists()  # a configured ring writes no file


def test_a_ring_on_file_reads_the_file_again_for_a_key_it_lacks(tmp_path):
    server = KeyRing("", tmp_path)  # loaded at start
    rotated = [new_key()] + server.keys()
    (tmp_path / "secret.key").write_text(format_keys(rotated))  # another process rotated
    sealed = KeyRing("", tmp_path).seal("sealed by the new key")
    assert server.open(sealed) == "sealed by the new key"


@pytest.mark.parametrize("text, message", [("", "empty"), ("not-base64!", "base64"), ("AAAA", "32 bytes")])
def test_a_bad_ring_is_refused(text, message):
    with pytest.raises(SealingError, match=message):
        parse_keys(text)


# ----------------------------------------------------------------- keys


def ssh_keygen(tmp_path, name, *args):
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is missing (Debian package openssh-client)")
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-f", str(path), *args], check=True)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{path}.pub"], check=True, capture_output=True,
                                 text=True).stdout.split()[1]
    return path.read_text(), fingerprint


@pytest.mark.parametrize("kind, args", [
    ("ed25519", ["-t", "ed25519"]), ("rsa-pem", ["-t", "rsa", "-b", "2048", "-m", "PEM"]),
    ("ecdsa-pkcs8", ["-t", "ecdsa", "-m", "PKCS8"])])
def test_private_keys_are_read_and_fingerprinted_as_ssh_keygen_does(tmp_path, kind, args):
    text, fingerprint = ssh_keygen(tmp_path, kind, "-N", "", *args)
    key, seen = read_private_key(text)
    assert seen == fingerprint
    assert key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_a_passphrase_opens_an_encrypted_key_and_a_wrong_one_is_refused(tmp_path):
    text, fingerprint = ssh_keygen(tmp_path, "encrypted", "-t", "ed25519", "-N", "a-passphrase")
    key, seen = read_private_key(text, "a-passphrase")
    assert seen == fingerprint and "ENCRYPTED" not in key
    for passphrase, why in ((None, "encrypted; give its passphrase"), ("wrong", "passphrase is wrong")):
        with pytest.raises(ValidationFailed, match=why):
            read_private_key(text, passphrase)


def test_public_keys_garbage_and_needless_passphrases_are_refused(tmp_path):
    text, _ = ssh_keygen(tmp_path, "plain", "-t", "ed25519", "-N", "")
    cases = [((tmp_path / "plain.pub").read_text(), None, "public key"),
             ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----", None, "public key"),
             ("not a key at all", None, "not a PEM or OpenSSH private key"),
             (text, "a-passphrase", "not encrypted")]
    for key, passphrase, why in cases:
        with pytest.raises(ValidationFailed, match=why) as caught:
            read_private_key(key, passphrase)
        assert caught.value.details[0]["name"] == "private_key"


def test_keys_made_by_the_tests_helper_are_usable():
    key, fingerprint = read_private_key(new_private_key())
    assert fingerprint.startswith("SHA256:")
    assert read_private_key(new_private_key("pass-phrase"), "pass-phrase")[1].startswith("SHA256:")
