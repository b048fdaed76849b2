"""What happens once at start, before the first request: the database is
evolved, the `admin` account is created when there is no user yet, and the
built-in services are loaded from service_templates/. The file of a
generated admin password goes once admin signs in or gets a new password."""
import os
import secrets
import sys
from pathlib import Path

import transaction

from . import settings as settings_module
from .catalog import load_builtin_services
from .connections import database
from .evolve import evolve
from .models.run import after_commit
from .resources import app_root
from .uploads import serve

ADMIN_PASSWORD_FILE = "initial-admin-password"


def create_first_admin(root, var_dir, password):
    """The first start on an empty database creates `admin`: with the
    password from the settings (PROVISIONER_ADMIN_PASSWORD), or a random one
    printed once and written to a file only its owner can read."""
    if len(root.users):
        return
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    root.users.create("admin", password, admin=True)
    if generated:
        path = Path(var_dir) / ADMIN_PASSWORD_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as stream:
            stream.write(password + "\n")
        print(f"Created user 'admin' with password {password} (also in {path}, readable by its owner only)",
              file=sys.stderr, flush=True)


def forget_initial_admin_password(users, name, var_dir):
    """The user `name` of `users` signed in or was given a password: when it
    is `admin`, delete the file of the generated password once the
    transaction commits."""
    if name == "admin":
        after_commit(users, lambda: (Path(var_dir) / ADMIN_PASSWORD_FILE).unlink(missing_ok=True))


def includeme(config):
    registry = config.registry
    var_dir = settings_module.get(registry, "var_dir")
    serve(database(registry), var_dir)  # the models find the upload directories of its projects
    connection = database(registry).open()
    try:
        evolve(connection, registry.keyring, var_dir)
        builtins = load_builtin_services(settings_module.get(registry, "service_templates_dir"))
        with transaction.manager:
            root = app_root(connection)
            create_first_admin(root, var_dir, settings_module.get(registry, "admin_password"))
            root.services.load_builtins(builtins, server={"var_dir": var_dir}, keyring=registry.keyring)
    finally:
        connection.close()
