"""Every setting the service reads, with its default, its coercion and its
environment override, in one place.

A setting `provisioner.<key>` comes from the ini file; the environment
variable `PROVISIONER_<KEY>` (upper case) overrides it, so a container or a
systemd unit can change any of them without editing the file. The ZODB URI is
pyramid_zodbconn's `zodbconn.uri`, overridable as `PROVISIONER_ZODB_URI`.
"""
import ipaddress
import os
import re
from pathlib import Path

import plaster

from .units import parse_bool, size_to_bytes

PREFIX = "provisioner."


def parse_byte_size(value):
    """'10MiB', '10M', '10485760' -> 10485760: the API's size grammar
    (units.py); settings also keep the spellings they always took: spaces
    inside ('10 M') and a B after the unit ('10MB', '10kb', 1024-based)."""
    text = re.sub(r"\s+", "", str(value))
    return size_to_bytes(re.sub(r"(?<=[\dkmgtpKMGTP])[bB]$", "", text))


def parse_setting_bool(value):
    """The API's booleans (units.py), and an empty value, which settings
    always read as false."""
    return False if not str(value).strip() else parse_bool(value)


def parse_deployment(value):
    if value not in ("development", "production"):
        raise ValueError(f"{value!r} is not development or production")
    return value


def parse_networks(value):
    """'10.0.0.0/8, fd00::/8' -> (IPv4Network('10.0.0.0/8'), IPv6Network('fd00::/8'))."""
    networks = []
    for part in str(value).split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{part.strip()!r} is not a network in CIDR notation like 10.0.0.0/8") from None
    return tuple(networks)


MAX_TOKEN_SECONDS = 2592000  # 30 days: no token lives longer, whatever the settings say


def parse_token_seconds(value):
    """A token lifetime in whole seconds, 1 to MAX_TOKEN_SECONDS."""
    seconds = int(value)
    if not 1 <= seconds <= MAX_TOKEN_SECONDS:
        raise ValueError(f"{value!r} is not between 1 and {MAX_TOKEN_SECONDS} seconds (30 days)")
    return seconds


MIN_SCRAPE_TOKEN = 16  # characters: a scrape token is a password, and never rate-limited


def parse_scrape_token(value):
    """'' (admins only) or a token of at least MIN_SCRAPE_TOKEN characters."""
    token = str(value).strip()
    if token and (len(token) < MIN_SCRAPE_TOKEN or any(char.isspace() for char in token)):
        raise ValueError(f"a scrape token is at least {MIN_SCRAPE_TOKEN} characters without spaces "
                         "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')")
    return token


# key: (default, coercion). Paths are resolved against var_dir in `load`.
SETTINGS = {
    "deployment": ("development", parse_deployment),
    "var_dir": ("var", str),
    # where local clusters' nodes live (empty: <var_dir>/nodes); every
    # process of one host that runs local clusters' playbooks shares it
    "nodes_dir": ("", str),
    "max_body_size": ("10MiB", parse_byte_size),
    "runner_slots": ("2", int),
    # a token's lifetime when the sign-in names none, and the most it may
    # ask for (longer is cut to it); both at most 30 days
    "token_expiration": ("86400", parse_token_seconds),
    "token_max_expiration": ("2592000", parse_token_seconds),
    "admin_password": ("", str),
    "playbooks_dir": ("", str),
    "service_templates_dir": ("", str),
    "start_dispatcher": ("true", parse_setting_bool),
    "callback_url": ("", str),
    "sweep_seconds": ("10", float),
    # the key ring sealing secrets at rest (sealing.py); empty: <var_dir>/secret.key
    "secret_key": ("", str),
    # the bubblewrap program local jobs run in (runner/sandbox.py), and
    # whether they share the host's network (false: a loopback of their own)
    "bwrap": ("bwrap", str),
    "local_jobs_network": ("true", parse_setting_bool),
    # runs of clusters an admin created may log in with the server's own SSH
    # agent and keys (a single-user deployment); never other users' clusters
    "lend_server_identity": ("false", parse_setting_bool),
    # node agents' long polls one process holds at once (each holds a server
    # thread); polls past it are answered at once, to come back a second later
    "agent_polls": ("4", int),
    # workers (processes that run playbooks) heartbeat this often; one
    # silent past the lease is dead, and its runs are lost
    "worker_heartbeat_seconds": ("10", float),
    "worker_lease_seconds": ("60", float),
    # on SIGTERM, running playbooks may finish for this long before they
    # are handed back as lost
    "drain_seconds": ("60", float),
    # SIGTERM drains (off where something else owns the process's signals)
    "handle_signals": ("true", parse_setting_bool),
    # the event feed keeps events this long, and at most this many
    "event_max_age_seconds": ("604800", float),
    "event_max_count": ("100000", int),
    # event streams (SSE, ?wait=, stdout?follow=) one process holds at once,
    # each holding a server thread (the server needs more threads than
    # agent_polls + event_streams); past it: 503 with Retry-After. A stream
    # ends after event_stream_seconds, and the client resumes.
    "event_streams": ("8", int),
    "event_stream_seconds": ("300", float),
    # webhooks (outbound.py) are never sent to loopback, link-local,
    # unspecified or multicast addresses, nor to this server's own, except
    # to these networks (comma-separated CIDRs) an admin allows
    "webhook_allowed_networks": ("", parse_networks),
    # peers (comma-separated addresses or CIDRs, a reverse proxy's) whose
    # X-Forwarded-For names the client that sign-in throttling counts
    # (throttling.py); others' X-Forwarded-For is ignored
    "trusted_proxies": ("", parse_networks),
    # the bearer token a Prometheus server scrapes GET /metrics with
    # (metrics.py; compared in constant time); empty: admins' tokens only
    "metrics_token": ("", parse_scrape_token),
}

# Package data, found through the package so that a wheel installed anywhere
# serves its own copies: ansible/ is an Ansible project (ansible.cfg,
# playbooks/, roles/) that plain ansible-playbook can run too;
# service_templates/ are the built-in services of the catalog.
PACKAGE_DIR = Path(__file__).resolve().parent
ANSIBLE_DIR = PACKAGE_DIR / "ansible"
ANSIBLE_CONFIG = ANSIBLE_DIR / "ansible.cfg"
PLAYBOOKS_DIR = ANSIBLE_DIR / "playbooks"
ROLES_DIR = ANSIBLE_DIR / "roles"
SERVICE_TEMPLATES_DIR = PACKAGE_DIR / "service_templates"


def load(raw_settings, environ=os.environ):
    """Return the app's settings: pyramid's own keys untouched, every
    `provisioner.*` key coerced (ValueError naming the key when it cannot be)."""
    settings = dict(raw_settings)
    for key, (default, coerce) in SETTINGS.items():
        env_name = "PROVISIONER_" + key.upper()
        value = environ.get(env_name, settings.get(PREFIX + key, default))
        try:
            settings[PREFIX + key] = coerce(value)
        except ValueError as exc:
            raise ValueError(f"setting {PREFIX + key} (or {env_name}): {exc}") from None
    if environ.get("PROVISIONER_ZODB_URI"):
        settings["zodbconn.uri"] = environ["PROVISIONER_ZODB_URI"]
    var_dir = Path(settings[PREFIX + "var_dir"]).resolve()
    settings[PREFIX + "var_dir"] = str(var_dir)
    settings[PREFIX + "nodes_dir"] = str(Path(settings[PREFIX + "nodes_dir"] or var_dir / "nodes").resolve())
    settings[PREFIX + "playbooks_dir"] = str(Path(settings[PREFIX + "playbooks_dir"] or PLAYBOOKS_DIR).resolve())
    settings[PREFIX + "service_templates_dir"] = str(
        Path(settings[PREFIX + "service_templates_dir"] or SERVICE_TEMPLATES_DIR).resolve())
    # uploads are blobs: the storage needs a blob directory
    uri = settings.get("zodbconn.uri") or "file://{var_dir}/Data.fs?blobstorage_dir={var_dir}/blobs"
    settings["zodbconn.uri"] = uri.replace("{var_dir}", str(var_dir))
    settings.setdefault("retry.attempts", 3)
    # An explicit transaction manager per server thread, kept with the
    # thread's ZODB connection; reads run without a transaction and
    # without retries (connections.py).
    settings.setdefault("tm.manager_hook", "pyramid_app.connections.thread_transaction_manager")
    settings.setdefault("tm.activate_hook", "pyramid_app.connections.needs_transaction")
    settings.setdefault("retry.activate_hook", "pyramid_app.retries.attempts_for")
    return settings


WAITRESS_DEFAULT_THREADS = 4


def server_threads(global_config):
    """waitress's `threads` in the [server:main] of the ini file pserve (or
    `provisioner worker`) started from, or None when there is no such file
    or it names another server."""
    path = global_config.get("__file__")
    if not path:
        return None
    # pserve's own loader: the ini's interpolation and `get` keys as pserve reads them
    defaults = {key: value for key, value in global_config.items() if not key.startswith("__")}
    try:
        server = plaster.get_settings(path, "server:main", defaults=defaults)
    except (LookupError, plaster.PlasterError):
        return None
    if server.get("use") != "egg:waitress#main":
        return None
    return int(server.get("threads", WAITRESS_DEFAULT_THREADS))


def check_server_threads(threads, loaded):
    """Agents' held polls and event streams each keep a waitress thread for
    up to minutes: with as many threads as both caps together, no thread
    would be left for the API (agents' reports included), and the server
    would hang. Refuse such a start."""
    polls, streams = loaded[PREFIX + "agent_polls"], loaded[PREFIX + "event_streams"]
    if threads is not None and polls + streams >= threads:
        raise ValueError(
            f"waitress has {threads} threads, and provisioner.agent_polls ({polls}) plus "
            f"provisioner.event_streams ({streams}) may hold {polls + streams} of them: raise `threads` in "
            f"[server:main] above {polls + streams}, or lower those settings (PROVISIONER_AGENT_POLLS, "
            "PROVISIONER_EVENT_STREAMS).")


def server_context(loaded):
    """What templates and placement checks know of this server (`server` in
    an inventory template), from loaded settings."""
    return {"var_dir": loaded[PREFIX + "var_dir"], "nodes_dir": loaded[PREFIX + "nodes_dir"]}


def get(request_or_registry, key):
    registry = getattr(request_or_registry, "registry", request_or_registry)
    return registry.settings[PREFIX + key]


def includeme(config):
    config.registry.settings.update(load(config.registry.settings))
    Path(get(config.registry, "var_dir")).mkdir(parents=True, exist_ok=True)
