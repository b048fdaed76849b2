"""`provisioner`: what an operator does without the API.

    provisioner users create NAME [--admin] [-c development.ini]
    provisioner users set-password NAME [-c development.ini]
    provisioner render SERVICE VERSION --name NAME --options options.json [-c development.ini]
    provisioner secrets rotate [-c development.ini]
    provisioner worker [-c production.ini]
    provisioner paths [ansible | ansible_config | playbooks | roles | service_templates]

The password is asked twice on a terminal, or read from standard input
(`--password-stdin`) for scripts.
"""
import argparse
import getpass
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import transaction
from plaster import get_loader
from ZODB import DB
from ZODB.POSException import StorageError
from zodburi import resolve_uri

from .. import settings as settings_module
from ..bootstrap import forget_initial_admin_password
from ..catalog import load_service_dir
from ..errors import APIError
from ..models.base import new_id
from ..models.cluster import configure
from ..models.service import Service, ServiceVersion
from ..evolve import evolve, pack_away_history
from ..rotation import reseal_everything, rotate
from ..runner.worker_command import run_worker
from ..sealing import KeyRing, SealingError
from ..resources import app_root
from ..schemas.common import NAME_RULE, is_valid_name
from ..schemas.users import MIN_PASSWORD


def load_settings(config_file):
    return settings_module.load(get_loader(config_file, protocols=["wsgi"]).get_wsgi_app_settings())


def open_keyring(loaded):
    try:
        return KeyRing(loaded["provisioner.secret_key"], loaded["provisioner.var_dir"])
    except (SealingError, OSError) as exc:
        sys.exit(f"Cannot read the secret key ring: {exc}.")


def open_database(config_file):
    loaded = load_settings(config_file)
    storage_factory, dbkw = resolve_uri(loaded["zodbconn.uri"])
    try:
        return DB(storage_factory(), **dbkw)
    except (StorageError, OSError) as exc:
        sys.exit(f"Cannot open the storage {loaded['zodbconn.uri']}: {exc}. "
                 "A FileStorage is locked while the server runs: stop it first (or use ZEO).")


def read_password(args):
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            sys.exit("The passwords differ.")
    if len(password) < MIN_PASSWORD:
        sys.exit(f"The password needs at least {MIN_PASSWORD} characters.")
    return password


def with_users(args, change):
    db = open_database(args.config)
    try:
        connection = db.open()
        loaded = load_settings(args.config)
        evolve(connection, open_keyring(loaded), loaded["provisioner.var_dir"])
        with transaction.manager:
            message = change(app_root(connection).users)
        print(message)
    except APIError as exc:
        sys.exit(exc.message)
    finally:
        db.close()


def users_create(args):
    if not is_valid_name(args.name) or args.name == "me":
        sys.exit(f"{args.name!r} is not a valid user name: {NAME_RULE}.")
    password = read_password(args)
    with_users(args, lambda users: (users.create(args.name, password, args.admin),
                                    f"Created user {args.name!r}{' (admin)' if args.admin else ''}.")[1])


def users_set_password(args):
    password = read_password(args)
    var_dir = load_settings(args.config)["provisioner.var_dir"]

    def change(users):
        user = users.get(args.name)
        if user is None:
            raise APIError(f"No user named {args.name!r}.")
        user.set_password(password)
        users.revoke_all_tokens(user)
        forget_initial_admin_password(users, user.name, var_dir)
        return f"Set the password of {args.name!r}; their tokens are revoked."

    with_users(args, change)


def find_service(args, loaded_settings, resources):
    """A built-in from the service templates directory (no database needed), else a
    registered service from the configured storage, kept open by
    `resources` (an ExitStack) while the entry is used."""
    directory = Path(loaded_settings["provisioner.service_templates_dir"]) / args.service / args.version
    if (directory / "service.yml").is_file():
        loaded = load_service_dir(directory)
        service = Service(args.service)
        entry = service.add(args.version, ServiceVersion(args.version, loaded["description"], builtin=True))
        entry.configure(options=loaded["options"], template=loaded["template"], playbooks=loaded["playbooks"],
                        server=settings_module.server_context(loaded_settings))
        return entry
    db = open_database(args.config)
    resources.callback(db.close)
    entry = evolve(db.open(), open_keyring(loaded_settings), loaded_settings["provisioner.var_dir"]
                   ).services.lookup(args.service, args.version)
    if entry is None:
        sys.exit(f"No service {args.service} {args.version}, built in or registered.")
    return entry


def render(args):
    """Print the inventory the API would render for these options, checked
    the same way."""
    loaded_settings = settings_module.load(get_loader(args.config, protocols=["wsgi"]).get_wsgi_app_settings())
    try:
        given = json.loads(Path(args.options).read_text()) if args.options else {}
    except (OSError, ValueError) as exc:
        sys.exit(f"Cannot read the options from {args.options}: {exc}")
    try:
        with ExitStack() as resources:
            entry = find_service(args, loaded_settings, resources)
            _, inventory = configure(entry, given, name=args.name, cluster_id=args.id, project=args.project,
                                     server=settings_module.server_context(loaded_settings))
    except APIError as exc:
        problems = "\n".join(f"  {d['name']}: {d['description']}" for d in exc.details)
        sys.exit(f"{exc.message}\n{problems}".rstrip())
    sys.stdout.write(inventory)


def secrets_rotate(args):
    """Seal every secret again under a new key and rotate the callback key;
    the storage is packed so that no old revision keeps what the old key
    sealed."""
    loaded = load_settings(args.config)
    keyring = open_keyring(loaded)
    db = open_database(args.config)
    try:
        connection = db.open()
        evolve(connection, keyring, loaded["provisioner.var_dir"])

        def commit_resealed(old, new):
            with transaction.manager:
                return reseal_everything(app_root(connection), old, new)
        count, ring = rotate(keyring, commit_resealed)
        pack_away_history(db)
    finally:
        db.close()
    print(f"Sealed {count} values under a new key; the previous callback key still verifies jobs in flight.")
    if ring is not None:
        print("The key is configured (PROVISIONER_SECRET_KEY or provisioner.secret_key): set it to this before "
              f"starting the service again:\n{ring}")


def worker(args):
    run_worker(args.config)


# The installed package's own copies, which the server uses unless
# provisioner.playbooks_dir / service_templates_dir say otherwise: where to
# run the playbooks by hand from, wherever pip put the package.
PATHS = {"ansible": settings_module.ANSIBLE_DIR, "ansible_config": settings_module.ANSIBLE_CONFIG,
         "playbooks": settings_module.PLAYBOOKS_DIR, "roles": settings_module.ROLES_DIR,
         "service_templates": settings_module.SERVICE_TEMPLATES_DIR}


def paths(args):
    if args.name:
        print(PATHS[args.name])
    else:
        for name, path in PATHS.items():
            print(f"{name:<18} {path}")


def parser():
    top = argparse.ArgumentParser(prog="provisioner", description=__doc__.split("\n\n")[0])
    commands = top.add_subparsers(dest="command", required=True)

    users = commands.add_parser("users", help="manage users on the configured storage")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    for name, handler, help_text in (("create", users_create, "create a user"),
                                     ("set-password", users_set_password, "set a user's password")):
        command = user_commands.add_parser(name, help=help_text)
        command.add_argument("name")
        command.add_argument("-c", "--config", default="development.ini", help="the ini file (development.ini)")
        command.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        if name == "create":
            command.add_argument("--admin", action="store_true", help="make the user an admin")
        command.set_defaults(handler=handler)

    command = commands.add_parser("render", help="print the inventory a cluster of a service would get")
    command.add_argument("service")
    command.add_argument("version")
    command.add_argument("--name", default="example", help="the cluster's name (example)")
    command.add_argument("--id", default=new_id(), help="the cluster's id (a new one)")
    command.add_argument("--project", default="default", help="the project's name (default)")
    command.add_argument("--options", help="a JSON file with the options")
    command.add_argument("-c", "--config", default="development.ini", help="the ini file (development.ini)")
    command.set_defaults(handler=render)

    secrets = commands.add_parser("secrets", help="the key that seals secrets at rest")
    secret_commands = secrets.add_subparsers(dest="secrets_command", required=True)
    command = secret_commands.add_parser("rotate", help="seal everything under a new key (stop a FileStorage "
                                         "server first)")
    command.add_argument("-c", "--config", default="development.ini", help="the ini file (development.ini)")
    command.set_defaults(handler=secrets_rotate)

    command = commands.add_parser("worker", help="run playbooks, place jobs and sweep, without HTTP, until SIGTERM "
                                  "(which drains it)")
    command.add_argument("-c", "--config", default="production.ini", help="the ini file (production.ini)")
    command.set_defaults(handler=worker)

    command = commands.add_parser("paths", help="where the Ansible project (ansible.cfg, playbooks, roles) and the "
                                  "built-in services are installed")
    command.add_argument("name", nargs="?", choices=PATHS, help="print only this one")
    command.set_defaults(handler=paths)
    return top


def main(argv=None):
    args = parser().parse_args(argv)
    args.handler(args)


if __name__ == "__main__":
    main()
