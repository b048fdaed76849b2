"""Service catalog: options specifications and built-in service directories.

An options document has up to four sections, as in the big-data PaaS registry::

    {"required": {"slaves.number": 4},
     "optional": {"slaves.cpu": 2, "password": {"type": "string", "secret": true}},
     "advanced": {"datanode.heap": {"type": "size", "default": "1G", "maximum": "8G"}},
     "descriptions": {"slaves.number": "Number of slave nodes"}}

In the first three sections a value is either a plain default, whose type is
inferred, or a spec mapping (it has a ``"type"``).  ``normalize_spec`` checks a
document and turns every value into a full spec; ``options_schema`` turns a
normalized spec into the one colander schema that validates cluster options.

Types are strict, as everywhere in the API: ``"2"`` is not an integer, ``2`` is
not a string, ``true`` is neither.  Sizes (``"512M"``, ``"4G"``) and durations
(``"30s"``, ``"2h"``) keep the form the client wrote; ``size_to_bytes`` and
``duration_to_seconds`` convert them where numbers are needed.  A ``pattern``
must match the whole value.  For lists, ``minimum``/``maximum`` bound the
length, and ``choices``/``pattern`` apply to each item.
"""
from ..units import duration_to_seconds, size_to_bytes
from .loading import SERVICE_FILE, TEMPLATE_FILE, load_builtin_services, load_service_dir, version_key
from .schema import OPTION_SECTIONS, effective_options, options_schema
from .secrets import (SECRET_MASK, credential_names, mask_secret_defaults, mask_secrets, seal_secret_defaults,
                      secret_names, secret_values, template_options)
from .spec import SECTIONS, SPEC_KEYS, SpecError, normalize_spec
from .types import OPTION_TYPES, SCALAR_TYPES, TYPES

__all__ = ["OPTION_SECTIONS", "OPTION_TYPES", "SCALAR_TYPES", "SECRET_MASK", "SECTIONS", "SERVICE_FILE", "SPEC_KEYS",
           "TEMPLATE_FILE", "TYPES", "SpecError", "credential_names", "duration_to_seconds", "effective_options",
           "load_builtin_services", "load_service_dir", "mask_secret_defaults", "mask_secrets", "normalize_spec",
           "options_schema", "seal_secret_defaults", "secret_names", "secret_values", "size_to_bytes",
           "template_options", "version_key"]
