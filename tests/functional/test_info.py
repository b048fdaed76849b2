import webtest
import ZEO

from pyramid_app import main
from pyramid_app.views.info import storage_without_credentials
from tests.conftest import Client, assert_error, close, settings_for


def test_version_needs_no_token(testapp):
    assert testapp.get("/v1/version").json == {"version": "0.1.0", "api": "1"}


def test_healthz_answers_when_storage_does(testapp):
    assert testapp.get("/healthz").json == {"status": "ok"}


def test_storage_down_is_503_everywhere(tmp_path):
    """A real ZEO server, stopped under a running app."""
    address, stop_zeo = ZEO.server(path=str(tmp_path / "Data.fs"), threaded=False)
    host, port = address
    app = main({}, **settings_for(tmp_path, **{"zodbconn.uri": f"zeo://{host}:{port}?wait_timeout=1"}))
    try:
        testapp = webtest.TestApp(app)
        api = Client(testapp)
        assert testapp.get("/healthz").json == {"status": "ok"}
        stop_zeo()
        assert_error(testapp.get("/healthz", status=503), 503, "StorageUnavailable")
        response = testapp.post_json("/v1/projects", {"name": "lost"}, headers=api.as_admin, status=503)
        assert_error(response, 503, "StorageUnavailable")
        assert response.headers["Retry-After"]
    finally:
        close(app)


def test_info(testapp, api, tmp_path):
    info = testapp.get("/v1/info", headers=api.as_admin).json
    assert info["storage"] == f"file://{tmp_path}/Data.fs?blobstorage_dir={tmp_path}/blobs"
    assert info["deployment"] == "development" and info["mode"] == "started"
    assert set(info["runner"]) == {"slots", "busy", "queued"}
    assert_error(testapp.get("/v1/info", status=401), 401)


def test_storage_uris_lose_their_credentials():
    assert storage_without_credentials("zeo://user:secret@db:8100?x=1") == "zeo://db:8100?x=1"
    assert "secret" not in storage_without_credentials("postgresql://?dsn=dbname=a password=secret")


def test_openapi_documents_every_endpoint_from_the_schemas(testapp, app):
    document = testapp.get("/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    registered = {(spec.route, spec.method.lower()) for spec in app.registry.endpoints}
    operations = {(op["operationId"].split("_", 1)[1], method)
                  for path in document["paths"].values() for method, op in path.items()}
    assert operations == registered
    create = document["paths"]["/v1/projects"]["post"]
    schemas = document["components"]["schemas"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProjectCreate"}
    body = schemas["ProjectCreate"]
    assert body["properties"]["name"]["pattern"] == "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
    assert body["additionalProperties"] is False
    assert set(create["responses"]) == {"201", "400", "401", "409", "415"}
    assert create["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/v1/version"]["get"]
    assert schemas["TokenRequest"]["properties"]["expiration"]["maximum"] == 2592000
    limit = [p for p in document["paths"]["/v1/projects"]["get"]["parameters"] if p["name"] == "limit"][0]
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 1000
