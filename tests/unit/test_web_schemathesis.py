"""schemathesis over the API's OpenAPI schema: no 5xx for any generated input, 401 without credentials.

The schema is fetched from /openapi.json with a bearer token (it needs one, like every API path);
each operation is then called with generated valid and invalid input, with the token and without.
The settings file is a scratch copy: generated PATCHes may change it (validated, never broken).
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient
from web_fixtures import ADMIN, PASSWORD, make_database

from dynapot.config import load_settings
from dynapot.web.app import create_app
from dynapot.web.context import WebContext


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("schemathesis")
    db, settings_path = make_database(folder)
    web = WebContext(db, load_settings(settings_path), settings_path, tls=False)
    web.allowed_hosts = frozenset({"testserver"})  # the Host schemathesis' ASGI transport sends
    app = create_app(web)
    token = TestClient(app).post("/api/v1/token", data={"username": ADMIN, "password": PASSWORD}).json()
    yield app, {"Authorization": f"Bearer {token['access_token']}"}, settings_path
    db.dispose()


@pytest.fixture(scope="module")
def api_schema(served):
    app, bearer, _ = served
    return schemathesis.openapi.from_asgi("/openapi.json", app, headers=bearer)


def operations(api_schema):
    """Every operation of the schema (schemathesis' pytest plugin does not run on this pytest: the
    cases are drawn from its strategies with Hypothesis directly)."""
    found = [result.ok() for result in api_schema.get_all_operations()]
    assert len(found) >= 7
    return found


def generated(operation):
    """Valid input (positive) and input the schema forbids (negative), both."""
    return st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_no_generated_input_makes_a_server_error_and_none_passes_without_credentials(api_schema, served):
    _, bearer, settings_path = served
    checked, statuses = [], set()
    for operation in operations(api_schema):
        if operation.path == "/api/v1/token":
            continue  # its own test below: generated logins would only lock the account

        @SETTINGS
        @given(case=generated(operation))
        def call(case):
            response = case.call(headers=bearer)
            statuses.add(response.status_code)
            assert response.status_code < 500, (
                case.method,
                case.path,
                response.status_code,
                response.text[:300],
            )
            load_settings(settings_path, environ={})  # whatever was accepted left a file the daemon reads
            anonymous = case.call(headers={"Authorization": ""})
            assert anonymous.status_code == 401, (case.method, case.path, anonymous.status_code)

        call()
        checked.append(f"{operation.method.upper()} {operation.path}")
    assert "PATCH /api/v1/settings" in checked and "GET /api/v1/events" in checked
    assert {200, 422} <= statuses, statuses  # accepted input and refused input were both generated


def test_generated_logins_are_refused_cleanly(api_schema):
    (token,) = [op for op in operations(api_schema) if op.path == "/api/v1/token"]

    @SETTINGS
    @given(case=generated(token))
    def call(case):
        response = case.call_and_validate(checks=[not_a_server_error])
        assert response.status_code in (401, 422, 429)

    call()
