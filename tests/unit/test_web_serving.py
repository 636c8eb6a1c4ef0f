"""`sentio api` serves the dashboard's build at `/` and its bundles under `/assets`, keeps the
API's JSON answers everywhere else, and says how to build it when the build is missing."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.dashboard import ENV_DIR, MISSING, dashboard_dir
from sentio_iot.api.first_admin import ensure_first_admin
from sentio_iot.api.server import serving
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.config import load_config
from sentio_iot.pipeline.orchestrator import where_to_look

INDEX = '<!doctype html><script type="module" src="/assets/index-abc.js"></script>'
BUNDLE = "console.log('sentio')"


def test_serves_the_build_at_the_root_and_the_api_stays_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = tmp_path / "dist"
    (build / "assets").mkdir(parents=True)
    (build / "index.html").write_text(INDEX)
    (build / "assets" / "index-abc.js").write_text(BUNDLE)
    monkeypatch.setenv(ENV_DIR, str(build))
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    with serving(create_app(config, start_feed=False)) as url:
        index = httpx.get(f"{url}/")
        assert (index.status_code, index.text) == (200, INDEX)
        assert index.headers["content-type"].startswith("text/html")
        assert index.headers["cache-control"] == "no-cache"
        bundle = httpx.get(f"{url}/assets/index-abc.js")
        assert (bundle.status_code, bundle.text) == (200, BUNDLE)
        assert "javascript" in bundle.headers["content-type"]
        assert httpx.get(f"{url}/assets/missing.js").status_code == 404
        unknown = httpx.get(f"{url}/api/v1/nothing-here")
        assert (unknown.status_code, unknown.json()) == (404, {"error": "Not Found"})
        refused = httpx.get(f"{url}/api/v1/devices")
        assert refused.status_code == 401
        assert refused.json() == {"error": "no credentials: send 'Authorization: Bearer <token>'"}
        assert "/" not in httpx.get(f"{url}/api/openapi.json").json()["paths"]


def test_without_a_build_the_root_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "no-build"))
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    app = create_app(config, start_feed=False)
    assert any(MISSING in record.getMessage() for record in caplog.records)
    with serving(app) as url:
        answer = httpx.get(f"{url}/")
        assert (answer.status_code, answer.text) == (503, MISSING + "\n")
        assert httpx.get(f"{url}/api/health").json()["status"] == "ok"


def test_the_default_build_is_web_dist_of_the_source_tree(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_DIR, raising=False)
    assert dashboard_dir() == Path(__file__).resolve().parents[2] / "web" / "dist"


def test_the_live_view_of_sentio_run_names_the_dashboard(tmp_path: Path) -> None:
    state = tmp_path / "api"
    config = load_config(data={"api": {"state_dir": str(state)}})
    admin = ensure_first_admin(state)
    assert admin is not None and admin.password is not None
    password = admin.password.get_secret_value()
    assert where_to_look(config, tmp_path)[-1] == (
        f"dashboard: http://127.0.0.1:8000/  (user admin, password {password}; change it with "
        "`sentio users passwd admin`)"
    )
    UserStore(AuthStore(state)).set_password("admin", SecretStr("a changed long password"))
    assert where_to_look(config, tmp_path)[-1] == (
        "dashboard: http://127.0.0.1:8000/  (sign in as one of `sentio users list`)"
    )
    wildcard = load_config(data={"api": {"host": "0.0.0.0", "port": 8123}})
    assert where_to_look(wildcard, tmp_path)[-1].startswith("dashboard: http://127.0.0.1:8123/ ")
