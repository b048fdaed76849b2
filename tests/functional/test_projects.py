import re

import pytest

from tests.conftest import assert_error


@pytest.fixture
def people(api):
    """A project 'demo' owned by olga, with mark as member and vera as viewer;
    stranger belongs to nothing."""
    headers = {name: api.user(name) for name in ("olga", "mark", "vera", "stranger")}
    api.project("demo", headers["olga"])
    for name, role in (("mark", "member"), ("vera", "viewer")):
        api.testapp.put_json(f"/v1/projects/demo/members/{name}", {"role": role}, headers=headers["olga"])
    return headers


def test_create_answers_201_with_location_and_the_object(testapp, api):
    response = testapp.post_json("/v1/projects", {"name": "demo", "description": "Demo."}, headers=api.as_admin,
                                 status=201)
    body = response.json
    assert response.headers["Location"].endswith("/v1/projects/demo")
    assert re.fullmatch(r"[0-9a-f]{8}", body["id"])
    assert body["name"] == "demo" and body["type"] == "project" and body["url"] == "/v1/projects/demo"
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert body["state"] == "active" and body["description"] == "Demo."


def test_a_project_without_a_name_is_named_by_its_id(testapp, api):
    body = testapp.post_json("/v1/projects", {}, headers=api.as_admin, status=201).json
    assert body["name"] == body["id"]


def test_duplicate_names_are_409(testapp, api):
    api.project("demo", api.as_admin)
    assert_error(testapp.post_json("/v1/projects", {"name": "demo"}, headers=api.as_admin, status=409), 409,
                 "NameTaken")


def test_bad_names_and_fields_are_400_and_nothing_is_stored(testapp, api):
    for body in ({"name": "Demo"}, {"name": ""}, {"name": "a" * 64}, {"name": "-a"}, {"name": 5}, {"name": "ok", "extra": 1},
                 {"name": "ok", "description": 3}, [], "text"):
        assert_error(testapp.post_json("/v1/projects", body, headers=api.as_admin, status=400), 400)
    assert testapp.get("/v1/projects", headers=api.as_admin).json["count"] == 0


def test_the_creator_is_owner(testapp, api, people):
    members = testapp.get("/v1/projects/demo/members", headers=people["vera"]).json
    assert {m["user"]: m["role"] for m in members["items"]} == {"olga": "owner", "mark": "member",
                                                                "vera": "viewer"}


def test_a_project_outside_yours_is_404_as_if_absent(testapp, people):
    absent = testapp.get("/v1/projects/nothing-here", headers=people["stranger"], status=404)
    hidden = testapp.get("/v1/projects/demo", headers=people["stranger"], status=404)
    assert assert_error(absent, 404)["error"] == assert_error(hidden, 404)["error"]
    assert_error(testapp.get("/v1/projects/demo/members", headers=people["stranger"], status=404), 404)


def test_lists_show_only_your_projects_but_admins_see_all(testapp, api, people):
    api.project("other", api.as_admin)
    assert [p["name"] for p in testapp.get("/v1/projects", headers=people["vera"]).json["items"]] == ["demo"]
    assert testapp.get("/v1/projects", headers=people["stranger"]).json == {"count": 0, "items": [], "next": None}
    assert testapp.get("/v1/projects", headers=api.as_admin).json["count"] == 2


def test_role_rules(testapp, people):
    patch = {"description": "Changed."}
    assert_error(testapp.patch_json("/v1/projects/demo", patch, headers=people["vera"], status=403), 403)
    assert_error(testapp.patch_json("/v1/projects/demo", patch, headers=people["mark"], status=403), 403)
    assert testapp.patch_json("/v1/projects/demo", patch, headers=people["olga"]).json["description"] == "Changed."
    for who in ("vera", "mark"):
        assert_error(testapp.put_json("/v1/projects/demo/members/stranger", {"role": "viewer"},
                                      headers=people[who], status=403), 403)
        assert_error(testapp.delete("/v1/projects/demo", headers=people[who], status=403), 403)


def test_owners_manage_members(testapp, people):
    response = testapp.put_json("/v1/projects/demo/members/stranger", {"role": "viewer"}, headers=people["olga"],
                                status=201)
    assert response.json == {"user": "stranger", "role": "viewer", "url": "/v1/projects/demo/members/stranger"}
    testapp.get("/v1/projects/demo", headers=people["stranger"], status=200)
    testapp.put_json("/v1/projects/demo/members/stranger", {"role": "member"}, headers=people["olga"], status=200)
    testapp.delete("/v1/projects/demo/members/stranger", headers=people["olga"], status=204)
    testapp.get("/v1/projects/demo", headers=people["stranger"], status=404)
    assert_error(testapp.delete("/v1/projects/demo/members/stranger", headers=people["olga"], status=404), 404)


def test_member_changes_are_validated(testapp, people):
    assert_error(testapp.put_json("/v1/projects/demo/members/stranger", {"role": "king"}, headers=people["olga"],
                                  status=400), 400)
    assert_error(testapp.put_json("/v1/projects/demo/members/nobody", {"role": "viewer"}, headers=people["olga"],
                                  status=400), 400)


def test_the_last_owner_cannot_leave_or_be_demoted(testapp, people):
    assert_error(testapp.delete("/v1/projects/demo/members/olga", headers=people["olga"], status=409), 409,
                 "LastOwner")
    assert_error(testapp.put_json("/v1/projects/demo/members/olga", {"role": "member"}, headers=people["olga"],
                                  status=409), 409, "LastOwner")
    testapp.put_json("/v1/projects/demo/members/mark", {"role": "owner"}, headers=people["olga"])
    testapp.delete("/v1/projects/demo/members/olga", headers=people["mark"], status=204)


def test_owner_deletes_a_project(testapp, people):
    testapp.delete("/v1/projects/demo", headers=people["olga"], status=204)
    assert_error(testapp.get("/v1/projects/demo", headers=people["olga"], status=404), 404)
    assert testapp.get("/v1/projects", headers=people["mark"]).json["count"] == 0


def test_pagination_with_limit_after_and_next(testapp, api):
    for name in ("p1", "p2", "p3", "p4", "p5"):
        api.project(name, api.as_admin)
    first = testapp.get("/v1/projects?limit=2", headers=api.as_admin).json
    assert first["count"] == 5 and [p["name"] for p in first["items"]] == ["p1", "p2"]
    assert first["next"] == "/v1/projects?limit=2&after=p2"
    second = testapp.get(first["next"], headers=api.as_admin).json
    assert [p["name"] for p in second["items"]] == ["p3", "p4"]
    last = testapp.get(second["next"], headers=api.as_admin).json
    assert [p["name"] for p in last["items"]] == ["p5"] and last["next"] is None


def test_bad_pagination_values_are_400(testapp, api):
    for query in ("limit=0", "limit=1001", "limit=x", "limit=1.5", "limit=-3"):
        response = testapp.get(f"/v1/projects?{query}", headers=api.as_admin, status=400)
        assert assert_error(response, 400)["details"][0] == {
            "location": "querystring", "name": "limit", "description": response.json["details"][0]["description"]}
