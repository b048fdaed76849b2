"""The service catalog: a Service is a name with versions; a ServiceVersion
holds an options specification, an inventory template and the playbook for
each lifecycle step."""
import re
from pathlib import Path

from BTrees.Length import Length

from ..catalog import (SpecError, mask_secret_defaults, normalize_spec, seal_secret_defaults, template_options,
                       version_key)
from ..errors import Conflict, ValidationFailed, detail
from ..rendering import TemplateError, render_inventory
from ..resources import Folder
from .base import Entity

STEPS = ("create", "update", "launch", "teardown")
PLAYBOOK_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml")
EXAMPLE_CLUSTER = {"name": "example", "id": "00000000"}


def check_playbooks(playbooks, playbooks_dir):
    """Each step may name only a file that is in the playbooks directory."""
    problems = []
    for step, name in sorted(playbooks.items()):
        if not PLAYBOOK_FILE.fullmatch(name) or ".." in name:
            problems.append(detail("body", f"playbooks.{step}",
                                   f"{name!r} is not a playbook file name (no paths; ends in .yml)"))
        elif not (Path(playbooks_dir) / name).is_file():
            problems.append(detail("body", f"playbooks.{step}",
                                   f"there is no playbook {name!r} in the server's playbooks directory"))
    if problems:
        raise ValidationFailed("Playbooks must be files in the server's playbooks directory.", problems)


def sample_options(spec):
    """Values to render a template with at registration: the defaults, and for
    a required option without one, a value of its type."""
    samples = {"integer": 1, "number": 1, "string": "example", "boolean": False, "list": [],
               "size": "1G", "duration": "1m"}
    values = {}
    for section in ("required", "optional", "advanced"):
        for name, option in spec.get(section, {}).items():
            if "default" in option:
                values[name] = option["default"]
            elif option.get("choices"):
                values[name] = option["choices"][0]
            elif option.get("minimum") is not None and option["type"] in ("integer", "number"):
                values[name] = option["minimum"]
            elif section == "required":
                values[name] = samples[option["type"]]
    return values


class ServiceVersion(Entity):
    type = "service"
    # Its playbooks may run again on what a lost run left half done: a step
    # a crash interrupted then runs again by itself (batch says so).
    idempotent = False

    def __init__(self, version, description="", builtin=False):
        super().__init__(version)
        self.description = description
        self.builtin = builtin
        self.options = normalize_spec({})
        self.playbooks = {}
        self.template = None
        self.clusters_using = Length()

    @property
    def service_name(self):
        return self.__parent__.name

    @property
    def version(self):
        return self.name

    def configure(self, *, options=None, template=None, playbooks=None, description=None, server=None,
                  keyring=None, idempotent=None):
        """Change what is given, after checking that the template renders with
        the options' defaults; nothing changes when anything is refused. A
        secret option's default is kept sealed (without `keyring`, offline,
        in clear)."""
        spec = self.options if options is None else _normalized(options)
        text = self.template if template is None else template
        if text is not None:
            check_template(text, spec, server or {})
        self.options = seal_secret_defaults(spec, keyring) if keyring is not None else spec
        self.template = text
        if playbooks is not None:
            self.playbooks = dict(playbooks)
        if description is not None:
            self.description = description
        if idempotent is not None:
            self.idempotent = idempotent
        self.touch()

    def refuse_change_if_builtin(self):
        if self.builtin:
            raise Conflict(f"{self.service_name} {self.version} is built in: it is read-only through the API; "
                           "register a new version instead.", code="BuiltinService")

    def as_json(self):
        return dict(super().as_json(), service=self.service_name, version=self.version,
                    description=self.description, options=mask_secret_defaults(self.options), playbooks=self.playbooks,
                    template=self.template, builtin=self.builtin, idempotent=self.idempotent,
                    clusters=self.clusters_using())


def _normalized(options):
    try:
        return normalize_spec(options)
    except SpecError as error:
        raise ValidationFailed(f"The options document is invalid: {error}.",
                               [detail("body", f"options.{error.name}", error.description)]) from None


def check_template(text, spec, server):
    try:
        render_inventory(text, options=template_options(spec, sample_options(spec), {}), cluster=EXAMPLE_CLUSTER,
                         project="example", server=dict({"lend_identity": False}, **server))
    except TemplateError as error:
        raise ValidationFailed(f"The template does not render with the options' defaults: {error}.",
                               [detail("body", "template", str(error))]) from None


class Service(Entity, Folder):
    """A service name; its children are its versions."""

    type = "service"

    def __init__(self, name):
        Entity.__init__(self, name)
        Folder.__init__(self, name)

    def versions_newest_first(self):
        return sorted(self.names(), key=version_key, reverse=True)

    def newest(self):
        versions = self.versions_newest_first()
        return self[versions[0]] if versions else None

    def as_json(self):
        return dict(super().as_json(), versions=self.versions_newest_first(),
                    description=self.newest().description if len(self) else "")


class Services(Folder):
    def register(self, name, version, description, *, builtin=False, **configuration):
        service = self.get(name)
        if service is not None and version in service:
            raise Conflict(f"{name} {version} is registered already.", code="NameTaken")
        entry = ServiceVersion(version, description, builtin)
        entry.configure(**configuration)
        if service is None:
            service = self.add(name, Service(name))
        return service.add(version, entry)

    def lookup(self, name, version=None):
        """The named version, or the newest; None when there is none."""
        service = self.get(name)
        if service is None:
            return None
        return service.newest() if version is None else service.get(version)

    def unregister(self, entry):
        entry.refuse_change_if_builtin()
        if entry.clusters_using():
            raise Conflict(f"{entry.clusters_using()} cluster(s) use {entry.service_name} {entry.version}; "
                           "purge them first.", code="ServiceInUse")
        service = entry.__parent__
        service.remove(entry.name)
        if not len(service):
            self.remove(service.name)

    def load_builtins(self, builtins, server, keyring):
        """Built-ins come from the service templates directory at every start, so the files
        on disk are the truth; what clusters use is kept."""
        for loaded in builtins:
            entry = self.lookup(loaded["name"], loaded["version"])
            configuration = dict(options=loaded["options"], template=loaded["template"],
                                 playbooks=loaded["playbooks"], description=loaded["description"], server=server,
                                 keyring=keyring, idempotent=loaded["idempotent"])
            if entry is None:
                self.register(loaded["name"], loaded["version"], loaded["description"], builtin=True,
                              **{k: v for k, v in configuration.items() if k != "description"})
            else:
                entry.configure(**configuration)
