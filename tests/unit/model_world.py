"""A real database (FileStorage) with the built-in services, for the
models' unit tests: the rules are exercised on the objects themselves, in
transactions of the test's own, the dispatcher off (the tests play its
part: claim a run, end it, move its cluster on)."""
from contextlib import contextmanager

import transaction

from pyramid_app import main, settings
from pyramid_app.connections import database
from pyramid_app.evolve import evolve
from pyramid_app.models import notes
from pyramid_app.models.cluster import Requester
from pyramid_app.resources import app_root
from tests.conftest import close, settings_for


@contextmanager
def commit_notes():
    """The notes each commit hands the runner's listeners, as a list that
    grows while the block runs."""
    heard = []
    notes.COMMIT_LISTENERS.append(heard.append)
    try:
        yield heard
    finally:
        notes.COMMIT_LISTENERS.remove(heard.append)


def logged(caplog, model):
    """The messages logged so far by pyramid_app.models.<model>."""
    return [r.getMessage() for r in caplog.records if r.name == f"pyramid_app.models.{model}"]


class World:
    requester = Requester(admin=True)

    def __init__(self, tmp_path):
        self.app = main({}, **settings_for(tmp_path, **{"provisioner.start_dispatcher": "false"}))
        self.manager = transaction.TransactionManager()
        self.connection = database(self.app.registry).open(self.manager)
        self.manager.begin()

    @property
    def root(self):
        return app_root(self.connection)

    @property
    def server(self):
        return settings.server_context(self.app.registry.settings)

    def commit(self):
        self.manager.commit()
        self.manager.begin()

    def evolve_from(self, generation):
        """Commit what the test stored as `generation` wrote it, run the
        evolve steps after it on a connection of their own, and look at
        what they committed."""
        self.root.generation = generation
        self.commit()
        connection = database(self.app.registry).open()
        try:
            evolve(connection, self.app.registry.keyring, self.app.registry.settings["provisioner.var_dir"])
        finally:
            transaction.abort()
            connection.close()
        self.manager.abort()
        self.manager.begin()

    def close(self):
        self.manager.abort()
        self.connection.close()
        close(self.app)

    def project(self, name="demo"):
        return self.root.projects.create(name, "", self.root.users["admin"])

    def cluster(self, name="c1", project="demo", **options):
        """A batch cluster of local nodes, its create run queued."""
        root = self.root
        if project not in root.projects:
            self.project(project)
        return root.projects[project].clusters.create(
            name, root.services.lookup("batch"), options, root.run_queue, self.server, created_by="admin",
            keyring=self.app.registry.keyring, requester=self.requester)

    @staticmethod
    def claim(cluster, run):
        """What a dispatcher claiming `run` does."""
        run.start("unit-test-worker")
        cluster.run_started(run)

    def end(self, cluster, run, status="successful", reason=None):
        """Claim `run` (unless it runs), end it with `status`, move its
        cluster on."""
        if run.status == "queued":
            self.claim(cluster, run)
        run.finish(status, 0 if status == "successful" else 2, {}, reason)
        cluster.run_finished(run, rerun_lost=True)

    def end_step(self, cluster, status="successful"):
        """End every unfinished run of the cluster's step in turn."""
        for run in list(cluster.step_runs):
            if not run.finished:
                self.end(cluster, run, status, None if status == "successful" else "a task failed")

    def active(self, name="c1", **options):
        cluster = self.cluster(name, **options)
        self.end_step(cluster)
        assert cluster.state == "active"
        return cluster
