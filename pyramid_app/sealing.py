"""Secrets sealed at rest: credential keys, `secret` option values and the
callback keys are stored in the database only as `Sealed` values, encrypted
with AES-256-GCM (an AEAD cipher, from the `cryptography` package) under a
key kept outside the database.

The key ring comes from `PROVISIONER_SECRET_KEY` (or the setting
`provisioner.secret_key`) when set, else from `<var_dir>/secret.key` (mode
0600), which the first start writes. Either holds one or more keys, newest
first, separated by commas or new lines, each as URL-safe base64 of 32
bytes. Values are sealed with the newest key; each `Sealed` names its key
by a digest of it, so `provisioner secrets rotate` can re-seal everything
under a new key while the old one still opens what it sealed.
"""
import base64
import hashlib
import json
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_FILE = "secret.key"
KEY_BYTES = 32
NONCE_BYTES = 12
ASSOCIATED_DATA = b"provisioner sealed value v1"


class SealingError(Exception):
    """A sealed value that no key of the ring opens, or a key ring that
    cannot be read."""


class Sealed:
    """An encrypted value, stored inside the persistent object that owns it.
    Its repr never shows the ciphertext."""

    __slots__ = ("key_id", "nonce", "ciphertext")

    def __init__(self, key_id, nonce, ciphertext):
        self.key_id = key_id
        self.nonce = nonce
        self.ciphertext = ciphertext

    def __getstate__(self):
        return (self.key_id, self.nonce, self.ciphertext)

    def __setstate__(self, state):
        self.key_id, self.nonce, self.ciphertext = state

    def __repr__(self):
        return f"<Sealed by key {self.key_id}>"


def key_id(key):
    return hashlib.sha256(key).hexdigest()[:12]


def parse_keys(text):
    """Keys (bytes), newest first, from the text of a key file or variable."""
    keys = []
    for word in text.replace(",", "\n").split():
        try:
            key = base64.b64decode(word + "=" * (-len(word) % 4), altchars=b"-_", validate=True)
        except ValueError:
            raise SealingError("a secret key is not URL-safe base64") from None
        if len(key) != KEY_BYTES:
            raise SealingError(f"a secret key must be {KEY_BYTES} bytes, this one has {len(key)}")
        keys.append(key)
    if not keys:
        raise SealingError("the secret key ring is empty")
    return keys


def format_keys(keys):
    return "\n".join(base64.urlsafe_b64encode(key).decode().rstrip("=") for key in keys) + "\n"


def new_key():
    return AESGCM.generate_key(bit_length=8 * KEY_BYTES)


def write_key_file(path, keys):
    """Replace the key file atomically, readable by its owner only."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(format_keys(keys))
    os.replace(temporary, path)


class KeyRing:
    """The keys that seal and open secrets: from the configured text, or
    from the key file, which is read again when a value names a key the
    ring does not have (another process rotated the keys)."""

    def __init__(self, configured, var_dir):
        self.configured = configured or ""
        self.path = Path(var_dir) / KEY_FILE
        self._lock = threading.Lock()
        self._keys = {}
        self._newest = None
        self._load(create=True)

    @property
    def from_file(self):
        return not self.configured

    def _load(self, create=False):
        if self.configured:
            keys = parse_keys(self.configured)
        else:
            try:
                keys = parse_keys(self.path.read_text())
            except FileNotFoundError:
                if not create:
                    raise SealingError(f"the secret key file {self.path} is missing") from None
                keys = [new_key()]
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as stream:
                    stream.write(format_keys(keys))
        with self._lock:
            self._keys = {key_id(key): key for key in keys}
            self._newest = keys[0]

    def keys(self):
        """Every key, newest first."""
        return [self._newest] + [key for key in self._keys.values() if key != self._newest]

    def seal(self, value):
        """Seal a str or bytes value (a str comes back as a str)."""
        if isinstance(value, str):
            data, kind = value.encode("utf-8"), b"s"
        else:
            data, kind = bytes(value), b"b"
        nonce = os.urandom(NONCE_BYTES)
        with self._lock:
            key = self._newest
        ciphertext = AESGCM(key).encrypt(nonce, kind + data, ASSOCIATED_DATA)
        return Sealed(key_id(key), nonce, ciphertext)

    def open(self, sealed):
        key = self._keys.get(sealed.key_id)
        if key is None and self.from_file:
            self._load()
            key = self._keys.get(sealed.key_id)
        if key is None:
            raise SealingError(f"no key of the ring opens a value sealed by key {sealed.key_id}")
        try:
            plain = AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, ASSOCIATED_DATA)
        except Exception:  # cryptography's InvalidTag: tampered with, or another key
            raise SealingError(f"a value sealed by key {sealed.key_id} does not open") from None
        kind, data = plain[:1], plain[1:]
        return data.decode("utf-8") if kind == b"s" else data

    def reseal(self, sealed):
        return self.seal(self.open(sealed))


def seal_json(keyring, value):
    """Any JSON value sealed as its JSON text; a sealed one stays as it is."""
    return value if isinstance(value, Sealed) else keyring.seal(json.dumps(value))


def open_json(keyring, value):
    return json.loads(keyring.open(value)) if isinstance(value, Sealed) else value


def seal_values(keyring, names, values):
    """`values` with the entries named in `names` sealed."""
    return {name: seal_json(keyring, value) if name in names else value for name, value in values.items()}


def open_values(keyring, values):
    """`values` with every sealed entry opened."""
    return {name: open_json(keyring, value) for name, value in values.items()}


def includeme(config):
    from . import settings

    registry = config.registry
    registry.keyring = KeyRing(settings.get(registry, "secret_key"), settings.get(registry, "var_dir"))
