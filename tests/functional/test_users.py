from tests.conftest import assert_error


def test_admin_creates_and_lists_users(testapp, api):
    response = testapp.put_json("/v1/users/alice", {"password": "alice-password"}, headers=api.as_admin,
                                status=201)
    assert response.json["name"] == "alice" and response.json["admin"] is False
    assert response.headers["Location"].endswith("/v1/users/alice")
    names = [u["name"] for u in testapp.get("/v1/users", headers=api.as_admin).json["items"]]
    assert names == ["admin", "alice"]


def test_non_admins_may_not_manage_users(testapp, api):
    alice = api.user("alice")
    assert_error(testapp.get("/v1/users", headers=alice, status=403), 403, "Forbidden")
    assert_error(testapp.put_json("/v1/users/bob", {"password": "12345678"}, headers=alice, status=403), 403)
    assert_error(testapp.delete("/v1/users/admin", headers=alice, status=403), 403)
    assert_error(testapp.put_json("/v1/users/alice", {"admin": True}, headers=alice, status=403), 403)


def test_short_password_is_400_and_nothing_is_stored(testapp, api):
    response = testapp.put_json("/v1/users/bob", {"password": "short"}, headers=api.as_admin, status=400)
    assert assert_error(response, 400, "ValidationFailed")["details"][0]["name"] == "password"
    testapp.get("/v1/users/bob", headers=api.as_admin, status=404)


def test_a_new_user_needs_a_password(testapp, api):
    assert_error(testapp.put_json("/v1/users/bob", {"admin": True}, headers=api.as_admin, status=400), 400)


def test_bad_user_names_are_400(testapp, api):
    for name in ("Bob", "-bob", "bob-", "b_b", "x" * 64):
        response = testapp.put_json(f"/v1/users/{name}", {"password": "12345678"}, headers=api.as_admin,
                                    status=400)
        assert assert_error(response, 400)["details"][0]["location"] == "path"


def test_me_is_not_a_user_name(testapp, api):
    assert_error(testapp.put_json("/v1/users/me", {"password": "12345678"}, headers=api.as_admin,
                                  status=405), 405)


def test_wrong_types_are_400(testapp, api):
    for body in ({"password": 12345678}, {"password": "12345678", "admin": "yes"}, {"password": "12345678", "x": 1}):
        assert_error(testapp.put_json("/v1/users/bob", body, headers=api.as_admin, status=400), 400)


def test_a_new_password_revokes_the_users_tokens(testapp, api):
    alice = api.user("alice")
    testapp.put_json("/v1/users/alice", {"password": "another-password"}, headers=api.as_admin, status=200)
    assert_error(testapp.get("/v1/users/me", headers=alice, status=401), 401)
    assert api.login("alice", "another-password")


def test_admin_flag_grants_admin_rights(testapp, api):
    alice = api.user("alice")
    testapp.put_json("/v1/users/alice", {"admin": True}, headers=api.as_admin)
    assert testapp.get("/v1/users", headers=alice).json["count"] == 2


def test_the_last_admin_cannot_lose_admin_rights(testapp, api):
    response = testapp.put_json("/v1/users/admin", {"admin": False}, headers=api.as_admin, status=409)
    assert_error(response, 409, "LastAdmin")


def test_deleting_a_user_removes_tokens_and_memberships(testapp, api):
    alice = api.user("alice")
    api.project("demo", api.as_admin)
    testapp.put_json("/v1/projects/demo/members/alice", {"role": "member"}, headers=api.as_admin)
    testapp.delete("/v1/users/alice", headers=api.as_admin, status=204)
    assert_error(testapp.get("/v1/users/me", headers=alice, status=401), 401)
    members = testapp.get("/v1/projects/demo/members", headers=api.as_admin).json
    assert [m["user"] for m in members["items"]] == ["admin"]
    assert_error(testapp.delete("/v1/users/alice", headers=api.as_admin, status=404), 404)


def test_an_admin_cannot_delete_themself(testapp, api):
    assert_error(testapp.delete("/v1/users/admin", headers=api.as_admin, status=409), 409)
