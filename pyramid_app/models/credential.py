"""A Credential is what a project's clusters log in with (kind `ssh_key`
first): its private key is checked when it is given and stored only sealed
(sealing.py); the API shows its kind, username and fingerprint, never the
key or its passphrase. Owners manage credentials, members name them in
cluster options (an option of type `credential`), viewers list them."""
import base64
import hashlib

from cryptography.hazmat.primitives import serialization

from ..errors import Conflict, ValidationFailed, detail
from ..resources import Folder
from .base import Entity

KINDS = ("ssh_key",)


def read_private_key(text, passphrase=None):
    """(the key as an unencrypted OpenSSH private key, its SHA256
    fingerprint), or ValidationFailed saying why the text is not a usable
    private key."""
    def refuse(why):
        return ValidationFailed(f"The private_key is not usable: {why}.", [detail("body", "private_key", why)])

    data = text.strip().encode("utf-8")
    if data.startswith((b"ssh-", b"ecdsa-", b"sk-")) or b"PUBLIC KEY" in data.split(b"\n", 1)[0]:
        raise refuse("it is a public key; give the private key")
    password = passphrase.encode("utf-8") if passphrase else None
    loader = serialization.load_ssh_private_key if b"OPENSSH PRIVATE KEY" in data \
        else serialization.load_pem_private_key
    try:
        key = loader(data + b"\n", password=password)
    except TypeError:  # a passphrase missing for an encrypted key, or given for a plain one
        raise refuse("it is encrypted; give its passphrase" if password is None
                     else "it is not encrypted, yet a passphrase was given") from None
    except ValueError:
        # an encrypted key read with a passphrase fails its checksum or padding
        raise refuse("the passphrase is wrong" if password is not None and _encrypted(data)
                     else "it is not a PEM or OpenSSH private key") from None
    except Exception:  # unsupported algorithms and other parser refusals
        raise refuse("it is not a PEM or OpenSSH private key of a supported type") from None
    try:
        private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption())
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    except (ValueError, TypeError):
        raise refuse("its type cannot be used for SSH") from None
    blob = base64.b64decode(public.split()[1])
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return private.decode("ascii"), fingerprint


def _encrypted(data):
    if b"OPENSSH PRIVATE KEY" in data:
        try:
            serialization.load_ssh_private_key(data + b"\n", password=None)
        except TypeError:
            return True
        except Exception:  # noqa: BLE001 -- unreadable either way
            return False
        return False
    return b"ENCRYPTED" in data


class Credential(Entity):
    type = "credential"

    def __init__(self, name, kind, created_by):
        super().__init__(name)
        self.kind = kind
        self.created_by = created_by
        self.username = None
        self.fingerprint = None
        self.sealed_key = None

    @property
    def project(self):
        return self.__parent__.__parent__

    def replace(self, private_key, passphrase, username, keyring, kind=None):
        """Take a new key (checked first: nothing changes when it is bad); a
        credential keeps its kind."""
        if kind is not None and kind != self.kind:
            raise Conflict(f"Credential {self.name!r} is a {self.kind}; delete it to make another kind.",
                           code="WrongKind")
        key, fingerprint = read_private_key(private_key, passphrase)
        self.sealed_key = keyring.seal(key)
        self.fingerprint = fingerprint
        self.username = username
        self.touch()

    def private_key(self, keyring):
        return keyring.open(self.sealed_key)

    def clusters_using(self):
        return sorted(cluster.name for cluster in self.project.clusters.values()
                      if cluster.may_log_in and self.name in cluster.credential_names())

    def as_json(self):
        return dict(super().as_json(), kind=self.kind, username=self.username, fingerprint=self.fingerprint,
                    created_by=self.created_by, clusters=self.clusters_using())


class Credentials(Folder):
    def create(self, name, kind, private_key, passphrase, username, created_by, keyring):
        if name in self:
            raise Conflict(f"A credential named {name!r} exists already in this project.", code="NameTaken")
        credential = Credential(name, kind, created_by)
        credential.replace(private_key, passphrase, username, keyring)
        return self.add(credential.name, credential)

    def delete(self, credential):
        using = credential.clusters_using()
        if using:
            raise Conflict(f"Credential {credential.name!r} is named by the clusters {', '.join(using)}; "
                           "tear them down or change their options first.", code="CredentialInUse")
        self.remove(credential.name)
