from BTrees.OOBTree import OOBTree
from pyramid.authorization import Allow

from ..errors import Conflict
from ..resources import Folder
from ..uploads import Uploads
from . import cluster as cluster_states
from .cluster import Clusters
from .credential import Credentials
from .base import Entity
from .webhook import Webhooks

ROLES = ("owner", "member", "viewer")
# a project is active until it is deleted; deleting while its clusters are
# torn down; removed once it is gone (its record may still be referenced)
ACTIVE, DELETING, REMOVED = "active", "deleting", "removed"

# viewers read; members also create and change clusters and jobs; owners
# also manage members and delete the project.
ROLE_PERMISSIONS = {
    "viewer": ("view",),
    "member": ("view", "edit"),
    "owner": ("view", "edit", "manage"),
}


class Project(Entity):
    type = "project"

    def __init__(self, name, description=""):
        super().__init__(name)
        self.description = description
        self.state = ACTIVE
        self.members = OOBTree()  # username -> role
        self.clusters = Clusters("clusters", self)
        self.credentials = Credentials("credentials", self)
        self.webhooks = Webhooks("webhooks", self)  # POSTs of its events (models/webhook.py)
        self.uploads = Uploads()  # PUT /v1/projects/{project}/uploads, for its jobs' files
        # The host keys its runs' ssh accepted (accept-new), one per line:
        # a key one project accepted never decides another's logins.
        self.known_hosts = ""

    @property
    def __acl__(self):
        return [(Allow, f"user:{username}", ROLE_PERMISSIONS[role]) for username, role in self.members.items()]

    def update(self, description):
        self.description = description
        self.touch()

    def set_member(self, user, role):
        if self.members.get(user.name) == "owner" and role != "owner":
            self._keep_an_owner(user.name)
        self.members[user.name] = role
        user.projects.add(self.name)
        self.touch()

    def remove_member(self, user):
        if self.members.get(user.name) == "owner":
            self._keep_an_owner(user.name)
        del self.members[user.name]
        user.projects.discard(self.name)
        self.touch()

    def _keep_an_owner(self, leaving):
        if not any(role == "owner" for name, role in self.members.items() if name != leaving):
            raise Conflict(f"{leaving!r} is the project's last owner; make someone else owner first.",
                           code="LastOwner")

    def begin_deletion(self, playbooks_of, queue):
        """Tear down the live clusters first; the project goes when they have.
        True when nothing was live and the project can go at once."""
        live = [cluster for cluster in self.clusters.values() if cluster.state != cluster_states.DELETED]
        if not live:
            return True
        self.state = DELETING
        for cluster in live:
            if cluster.state != cluster_states.DELETING:
                cluster.request_teardown(playbooks_of(cluster), queue)
        self.touch()
        return False

    def cluster_deleted(self):
        """A cluster of this project was torn down or purged: a deleting
        project goes once none is left standing."""
        if self.state == DELETING and all(c.state == cluster_states.DELETED for c in self.clusters.values()):
            self.__parent__.delete(self)

    def keep_known_hosts(self, text):
        """Add the lines of `text` (a run's known_hosts file as it ended)
        that are not stored yet, after the stored ones: two runs of the
        project that ended together each keep what they learned."""
        stored = self.known_hosts.splitlines()
        seen = set(stored)
        added = []
        for line in text.splitlines():
            if line.strip() and line not in seen:
                seen.add(line)
                added.append(line)
        if added:
            self.known_hosts = "".join(line + "\n" for line in stored + added)
        return added

    def as_json(self):
        return dict(super().as_json(), description=self.description, state=self.state,
                    members=len(self.members), clusters=len(self.clusters))


class Projects(Folder):
    def create(self, name, description, owner):
        if name is not None and name in self:
            raise Conflict(f"A project named {name!r} exists already.", code="NameTaken")
        project = Project(name, description)
        self.add(project.name, project)
        project.set_member(owner, "owner")
        return project

    def delete(self, project):
        """Remove the project, its clusters' records and its memberships;
        and its uploads (their blobs go when the storage is packed)."""
        root = self.__parent__
        project.state = REMOVED  # its clusters' purges must not delete it again
        project.touch()
        for cluster in list(project.clusters.values()):
            project.clusters.purge(cluster, root.services.lookup(cluster.service, cluster.version))
        for username in list(project.members.keys()):
            user = root.users.get(username)
            if user is not None:
                user.projects.discard(project.name)
        self.remove(project.name)
        project.uploads.clear()
