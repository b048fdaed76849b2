"""Built-in service directories: ``<service templates directory>/<name>/<version>/``."""
import re
from pathlib import Path

import yaml

from .spec import SpecError, normalize_spec

SERVICE_FILE = "service.yml"
TEMPLATE_FILE = "inventory.yml.j2"
SERVICE_KEYS = ("description", "options", "playbooks", "idempotent")


def load_service_dir(path):
    """Read ``<name>/<version>/`` of the service templates directory: service.yml and inventory.yml.j2."""
    directory = Path(path)
    service_file = directory / SERVICE_FILE
    data = _read_service_file(service_file)
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise SpecError(
            f"{service_file}:options",
            "must be an options document (required, optional, advanced, descriptions)",
        )
    try:
        normalized = normalize_spec(options)
    except SpecError as error:
        raise SpecError(f"{service_file}:options.{error.name}", error.description) from None
    return {
        "name": directory.parent.name,
        "version": directory.name,
        "description": data["description"],
        "options": normalized,
        "playbooks": data.get("playbooks") or {},
        "idempotent": _idempotent(service_file, data),
        "template": _read_text(directory / TEMPLATE_FILE),
    }


def _idempotent(service_file, data):
    value = data.get("idempotent", False)
    if not isinstance(value, bool):
        raise SpecError(f"{service_file}:idempotent", "must be true or false")
    return value


def load_builtin_services(root):
    """Every ``<root>/<name>/<version>/``, sorted by name, then version."""
    services = [load_service_dir(file.parent) for file in Path(root).glob(f"*/*/{SERVICE_FILE}")]
    return sorted(services, key=lambda service: (service["name"], version_key(service["version"])))


def version_key(version):
    # Numeric parts compare as numbers, so 5.10 comes after 5.9 and the newest is last.
    return tuple(
        (0, int(part), "") if part.isdecimal() else (1, 0, part) for part in re.split(r"[.-]", version)
    )


def _read_text(file):
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(str(file), f"cannot be read: {getattr(error, 'strerror', None) or error}") from None


def _read_service_file(service_file):
    try:
        data = yaml.safe_load(_read_text(service_file))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError(str(service_file), f"is not valid YAML: {problem}{where}") from None
    if not isinstance(data, dict):
        raise SpecError(str(service_file), "must be a mapping with " + ", ".join(SERVICE_KEYS))
    for key in data:
        if key not in SERVICE_KEYS:
            raise SpecError(
                f"{service_file}:{key}", "is not a service.yml key; use " + ", ".join(SERVICE_KEYS)
            )
    if not isinstance(data.get("description"), str):
        raise SpecError(f"{service_file}:description", "must be text saying what the service is")
    return data
