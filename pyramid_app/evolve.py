"""Numbered evolve steps for what is stored. The root keeps the number of
the last step applied; every start applies the ones after it, in order, in
one transaction. A change to stored objects adds a step here, never code in a
view that patches old objects on the fly."""
import logging

import transaction

from .models.project import Projects
from .models.user import Users
from .resources import ROOT_KEY, AppRoot

log = logging.getLogger(__name__)


def step_1_users_and_projects(root):
    root.users = Users("users", root)
    root.projects = Projects("projects", root)


STEPS = [step_1_users_and_projects]


def evolve(connection):
    """Bring the database to the newest generation; return the app root."""
    with transaction.manager:
        zodb_root = connection.root()
        if ROOT_KEY not in zodb_root:
            zodb_root[ROOT_KEY] = AppRoot()
        root = zodb_root[ROOT_KEY]
        for number, step in enumerate(STEPS[root.generation:], start=root.generation + 1):
            log.info("evolving the database to generation %d: %s", number, step.__name__)
            step(root)
            root.generation = number
    return root
