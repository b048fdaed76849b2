from datetime import timedelta

from BTrees.OOBTree import OOBTree, OOTreeSet
from persistent import Persistent

from ..errors import Conflict
from ..resources import Folder
from ..security import check_password_of, hash_password, new_token, token_digest
from .base import Entity, rfc3339, utcnow


class User(Entity):
    type = "user"

    def __init__(self, name, password, admin=False):
        super().__init__(name)
        self.admin = admin
        self.password_hash = hash_password(password)
        self.projects = OOTreeSet()  # names of the projects this user belongs to
        self.token_digests = OOTreeSet()

    def sees(self, project):
        """Whether the user may see `project`: admins see every project,
        others those they are members of (whatever the role)."""
        return self.admin or project.name in self.projects

    def set_password(self, password):
        self.password_hash = hash_password(password)
        self.touch()

    def as_json(self):
        return dict(super().as_json(), admin=self.admin)


class Token(Persistent):
    def __init__(self, username, expires_at):
        self.username = username
        self.created_at = utcnow()
        self.expires_at = expires_at


class Users(Folder):
    """The users, and the tokens issued to them (kept as digests only)."""

    def __init__(self, name=None, parent=None):
        super().__init__(name, parent)
        self.tokens = OOBTree()  # digest -> Token

    def create(self, name, password, admin=False):
        if name in self:
            raise Conflict(f"A user named {name!r} exists already.", code="NameTaken")
        return self.add(name, User(name, password, admin))

    def set_admin(self, user, admin):
        if user.admin and not admin and not any(u.admin for u in self.values() if u is not user):
            raise Conflict(f"{user.name!r} is the last admin; make another user admin first.", code="LastAdmin")
        user.admin = admin
        user.touch()

    def authenticate(self, name, password):
        user = self.get(name)
        return user if check_password_of(user, password) else None

    def issue_token(self, user, seconds):
        self._forget_expired_tokens(user)
        token = new_token()
        digest = token_digest(token)
        expires_at = utcnow() + timedelta(seconds=seconds)
        self.tokens[digest] = Token(user.name, expires_at)
        user.token_digests.add(digest)
        return token, expires_at

    def _forget_expired_tokens(self, user):
        now = utcnow()
        for digest in list(user.token_digests):
            token = self.tokens.get(digest)
            if token is None or token.expires_at <= now:
                self.tokens.pop(digest, None)
                user.token_digests.discard(digest)

    def user_for_token(self, digest):
        """(user, None) for a live token, else (None, 'invalid'|'expired')."""
        token = self.tokens.get(digest)
        if token is None:
            return None, "invalid"
        if token.expires_at <= utcnow():
            return None, "expired"
        user = self.get(token.username)
        return (user, None) if user is not None else (None, "invalid")

    def revoke_token(self, digest):
        token = self.tokens.pop(digest, None)
        if token is not None and token.username in self:
            self[token.username].token_digests.discard(digest)

    def revoke_all_tokens(self, user):
        for digest in list(user.token_digests):
            self.tokens.pop(digest, None)
        user.token_digests.clear()

    def delete(self, user):
        projects = self.__parent__.projects
        self.revoke_all_tokens(user)
        for project_name in list(user.projects):
            projects[project_name].members.pop(user.name, None)
        self.remove(user.name)


def token_json(token, user, expires_at):
    return {"token": token, "user": user.name, "expires_at": rfc3339(expires_at)}
