"""What happens once at start, before the first request: the database is
evolved, the `admin` account is created when there is no user yet, and the
built-in services are loaded from the service templates directory. The file of a
generated admin password goes once admin signs in or gets a new password."""
import os
import random
import secrets
import sys
import time
from pathlib import Path

import transaction
from ZODB.POSException import ConflictError

from . import settings as settings_module
from .catalog import load_builtin_services
from .connections import database
from .evolve import evolve
from .models.notes import after_commit
from .resources import app_root
from .sealing import SealingError
from .security import callback_keys

ADMIN_PASSWORD_FILE = "initial-admin-password"
STARTUP_ATTEMPTS = 10


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


def require_the_databases_keys(root, keyring):
    """Every process sharing a database must seal with the same key ring: a
    process with its own <var_dir>/secret.key would seal what no other can
    open. The callback keys, sealed in every database, tell."""
    try:
        callback_keys(root, keyring)
    except SealingError as exc:
        raise SealingError(f"this process's secret key ring does not open the database's secrets ({exc}): every "
                           "process sharing a database needs the same key (PROVISIONER_SECRET_KEY or "
                           "provisioner.secret_key; see the README's deployment guide)") from None


def includeme(config):
    registry = config.registry
    var_dir = settings_module.get(registry, "var_dir")
    builtins = load_builtin_services(settings_module.get(registry, "service_templates_dir"))
    connection = database(registry).open()
    try:
        # processes started together over one new database all evolve it:
        # the first commit wins, the others find it done
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            try:
                root = evolve(connection, registry.keyring, var_dir)
                require_the_databases_keys(root, registry.keyring)
                with transaction.manager:
                    root = app_root(connection)
                    create_first_admin(root, var_dir, settings_module.get(registry, "admin_password"))
                    root.services.load_builtins(builtins, server=settings_module.server_context(registry.settings),
                                                keyring=registry.keyring)
                break
            except ConflictError:
                if attempt == STARTUP_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0.05, 0.5))
    finally:
        connection.close()
