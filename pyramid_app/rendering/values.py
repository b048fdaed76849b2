"""What rendering shares: the strings a template sees or an inventory holds
(unsafe text, references to secrets and credentials), its one error, and the
deadline of the render under way."""
import threading
import time

UNSAFE_TAG = "!unsafe"
SECRETS_VARIABLE = "provisioner_secrets"  # the extra var runs get the secret options' values in
CREDENTIALS_VARIABLE = "provisioner_credentials"  # ... and the paths of the credential files they write
MAX_INVENTORY_CHARS = 1024 * 1024  # a thousand hosts with a kilobyte of variables each


class Unsafe(str):
    """Text Ansible must never template: read from, and written back as, ``!unsafe "..."``."""

    __slots__ = ()


class SecretReference(str):
    """What a template sees for the secret option ``name``: the Ansible expression reading its value."""

    __slots__ = ()
    variable = SECRETS_VARIABLE

    def __new__(cls, name):
        return super().__new__(cls, f"{{{{ {cls.variable}[{name!r}] }}}}")


class CredentialReference(SecretReference):
    """What a template sees for a ``credential`` option naming an SSH key: the
    Ansible expression for the path of the key file each run writes (mode
    0600, removed when the run ends); ``.username`` is the credential's
    username ('' when it has none)."""

    variable = CREDENTIALS_VARIABLE

    def __new__(cls, name, username):
        reference = super().__new__(cls, name)
        reference.username = username or ""
        return reference


class TemplateError(ValueError):
    """A template that cannot be rendered, or renders no valid inventory."""

    def __init__(self, reason, line=None):
        super().__init__(reason if line is None else f"line {line}: {reason}")
        self.reason = reason
        self.line = line


_rendering = threading.local()  # the deadline of the render under way in this thread, and its length


def start_deadline(seconds):
    _rendering.deadline = time.monotonic() + seconds
    _rendering.seconds = seconds


def end_deadline():
    _rendering.deadline = None


def check_deadline():
    deadline = getattr(_rendering, "deadline", None)
    if deadline is not None and time.monotonic() > deadline:
        raise TemplateError(f"the template took longer than {_rendering.seconds} s to render")


def check_length(text):
    """PyYAML quotes in pure Python: a string too long for any inventory is
    refused before, not after, seconds of quoting it."""
    if len(text) > MAX_INVENTORY_CHARS:
        raise TemplateError(f"the inventory would be longer than {MAX_INVENTORY_CHARS} characters")
