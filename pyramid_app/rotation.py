"""`provisioner secrets rotate`: every sealed value (credential keys,
`secret` option values, callback keys) sealed again under a new key, and a
new callback key that signs from now on while the previous one still
verifies the jobs launched before."""
from .catalog import OPTION_SECTIONS
from .models.credential import Credential
from .sealing import KeyRing, Sealed, format_keys, new_key, write_key_file
from .security import CALLBACK_KEYS_KEPT, callback_keys, new_callback_key


def reseal_everything(root, old, new):
    """Seal again under `new` what `old` sealed; return how many values."""
    count = 0

    def again(value):
        nonlocal count
        if isinstance(value, Sealed):
            count += 1
            return new.seal(old.open(value))
        return value

    def spec_again(spec):
        return {section: {name: dict(option, default=again(option["default"])) if "default" in option else option
                          for name, option in entries.items()} if section in OPTION_SECTIONS else entries
                for section, entries in spec.items()}

    for service in root.services.values():
        for entry in service.values():
            entry.options = spec_again(entry.options)
    for project in root.projects.values():
        for credential in project.credentials.values():
            if isinstance(credential, Credential) and credential.sealed_key is not None:
                credential.sealed_key = again(credential.sealed_key)
        for cluster in project.clusters.values():
            cluster.options_spec = spec_again(cluster.options_spec)
            cluster.options = {name: again(value) for name, value in cluster.options.items()}
            cluster.given_options = {name: again(value) for name, value in cluster.given_options.items()}
        for webhook in project.webhooks.values():
            webhook.sealed_secret = again(webhook.sealed_secret)
    keys = [new_callback_key()] + callback_keys(root, old)[:CALLBACK_KEYS_KEPT - 1]
    root.callback_keys[:] = [new.seal(key) for key in keys]
    return count + len(keys)


def rotate(keyring, commit_resealed):
    """Make a new key, reseal everything with it (`commit_resealed(old,
    new)` does it in one transaction), then keep only the new key. With
    the key file, it is rewritten (first with both keys, so a server
    reading it meanwhile opens either); with a configured key, the new ring
    is returned for the operator to set. Returns (values resealed, ring text
    to set or None)."""
    key = new_key()
    both = [key] + keyring.keys()
    if keyring.from_file:
        write_key_file(keyring.path, both)
    new = KeyRing(format_keys(both), keyring.path.parent)
    count = commit_resealed(keyring, new)
    if keyring.from_file:
        write_key_file(keyring.path, [key])
        return count, None
    return count, format_keys([key]).strip()
