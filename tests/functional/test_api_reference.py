"""docs/API.md, the repository's own API reference, names the endpoints the
served OpenAPI document has, and only those; and nothing a user reads
points outside the repository."""
import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
REFERENCE = REPOSITORY / "docs" / "API.md"
METHODS = "GET|POST|PUT|PATCH|DELETE"
# `GET /v1/users`, `PUT|DELETE /v1/projects/{project}/members/{user}`, `PUT /v1/uploads?path=`
MENTION = re.compile(rf"`((?:{METHODS})(?:\|(?:{METHODS}))*) (/[^`\s?]*)")
# what a clone does not have: the contract and design notes this repository was written from
OUTSIDE = re.compile(r"\.\./shared|shared/API|DESIGN\.md|\bseeds\b", re.IGNORECASE)
NOT_READ_BY_USERS = {".git", ".venv", "var", "build", "tests", "__pycache__", "provisioner.egg-info"}


def documented_endpoints(text):
    return {(method, path) for methods, path in MENTION.findall(text) for method in methods.split("|")}


def served_endpoints(testapp):
    document = testapp.get("/v1/openapi.json").json
    return {(method.upper(), path) for path, operations in document["paths"].items()
            for method in operations if method.upper() in METHODS.split("|")}


def test_the_reference_and_the_openapi_document_name_the_same_endpoints(testapp):
    documented, served = documented_endpoints(REFERENCE.read_text()), served_endpoints(testapp)
    assert len(served) > 60
    assert sorted(served - documented) == [], "served but not in docs/API.md"
    assert sorted(documented - served) == [], "in docs/API.md but not served"


def test_the_mentions_are_found_as_written():
    text = "`GET /v1/users`, `PUT|DELETE /v1/projects/{project}/members/{user}` and `PUT /v1/uploads?path=`"
    assert documented_endpoints(text) == {("GET", "/v1/users"), ("PUT", "/v1/uploads"),
                                          ("PUT", "/v1/projects/{project}/members/{user}"),
                                          ("DELETE", "/v1/projects/{project}/members/{user}")}


def test_the_readme_sends_readers_to_the_reference():
    readme = (REPOSITORY / "README.md").read_text()
    assert "(docs/API.md)" in readme


def user_facing_files():
    for path in sorted(REPOSITORY.rglob("*")):
        parts = set(path.relative_to(REPOSITORY).parts)
        if path.is_file() and not parts & NOT_READ_BY_USERS and not path.name.endswith((".pyc", ".fs")):
            yield path


def test_nothing_points_outside_the_repository():
    """README, docs, inis, the status page, service templates, playbooks,
    roles, examples and the code's own messages."""
    checked, outside = [], []
    for path in user_facing_files():
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        checked.append(path.relative_to(REPOSITORY).as_posix())
        outside += [f"{checked[-1]}:{number}: {line.strip()}"
                    for number, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert {"README.md", "docs/API.md", "development.ini", "production.ini"} <= set(checked)
    assert any(name.startswith("pyramid_app/static/") for name in checked)
    assert any("playbooks/" in name for name in checked) and any("roles/" in name for name in checked)
    assert outside == []
