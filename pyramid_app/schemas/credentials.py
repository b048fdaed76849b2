import colander

from ..models.credential import KINDS
from .common import Entity, Name, StrictMapping, StrictString

MAX_KEY_CHARS = 16 * 1024  # an RSA key of 8192 bits in PEM is about 6.5 KB
USERNAME_PATTERN = r"^[a-z_][a-z0-9_.-]{0,31}$"


class CredentialPut(StrictMapping):
    kind = colander.SchemaNode(StrictString(), validator=colander.OneOf(KINDS),
                               description="What it is; ssh_key: an SSH private key.")
    private_key = colander.SchemaNode(StrictString(), validator=colander.Length(1, MAX_KEY_CHARS),
                                      description="The private key, PEM or OpenSSH; write-only.")
    passphrase = colander.SchemaNode(StrictString(), missing=None, validator=colander.Length(0, 1024),
                                     description="The key's passphrase, when it has one; write-only.")
    username = colander.SchemaNode(StrictString(), missing=None,
                                   validator=colander.Regex(USERNAME_PATTERN, msg="must be a user name like ops"),
                                   description="The user to log in as, where the cluster's options name none.")


class CredentialCreate(CredentialPut):
    name = Name(description="Unique in the project.")


class Credential(Entity):
    kind = colander.SchemaNode(colander.String(), validator=colander.OneOf(KINDS))
    username = colander.SchemaNode(colander.String(), missing=None)
    fingerprint = colander.SchemaNode(colander.String(), description="SHA256:..., as ssh-keygen -lf prints it.")
    created_by = colander.SchemaNode(colander.String())
    clusters = colander.SequenceSchema(colander.SchemaNode(colander.String()),
                                       description="The live clusters of the project that name it.")
