"""Secret and credential options: masked where shown, sealed where stored,
references where a template sees them."""
from ..rendering import CredentialReference, SecretReference
from ..sealing import seal_json
from .schema import OPTION_SECTIONS

SECRET_MASK = "******"


def secret_names(spec):
    return {
        name
        for section in OPTION_SECTIONS
        for name, option in spec.get(section, {}).items()
        if option.get("secret")
    }


def credential_names(spec):
    """The options naming credentials."""
    return {
        name
        for section in OPTION_SECTIONS
        for name, option in spec.get(section, {}).items()
        if option["type"] == "credential"
    }


def mask_secrets(spec, options):
    """A copy of ``options`` fit to show: secret values replaced by
    ``"******"``. The other values are shared, not copied (it is on the hot
    path of every read): render them, do not change them."""
    secret = secret_names(spec)
    return {name: SECRET_MASK if name in secret else value for name, value in options.items()}


def mask_secret_defaults(spec):
    """The options document fit to show: a secret option's default is a
    secret value like any other."""
    return {
        section: {name: dict(option, default=SECRET_MASK) if option.get("secret") and "default" in option
                  else option for name, option in entries.items()}
        if section in OPTION_SECTIONS else entries
        for section, entries in spec.items()
    }


def seal_secret_defaults(spec, keyring):
    """The spec with each secret option's default sealed: a default is a
    secret value like any other (effective options take it sealed)."""
    return {
        section: {name: dict(option, default=seal_json(keyring, option["default"]))
                  if option.get("secret") and "default" in option else option for name, option in entries.items()}
        if section in OPTION_SECTIONS else entries
        for section, entries in spec.items()
    }


def template_options(spec, options, credential_users=None):
    """``options`` as a template sees them: each secret one as the reference
    Ansible resolves at run time, so its value is never in an inventory;
    each credential one (naming a credential) as the reference to the key
    file its runs write, with the credential's username
    (``credential_users``: credential name -> username)."""
    secret = secret_names(spec)
    credentials = credential_names(spec)

    def seen(name, value):
        if name in secret:
            return SecretReference(name)
        if name in credentials and value:
            return CredentialReference(name, (credential_users or {}).get(value))
        return value
    return {name: seen(name, value) for name, value in options.items()}


def secret_values(spec, options):
    """The values ``template_options`` referred to, for a run's extra vars."""
    secret = secret_names(spec)
    return {name: value for name, value in options.items() if name in secret}
