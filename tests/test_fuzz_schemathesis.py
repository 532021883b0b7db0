"""Schemathesis against the app's own OpenAPI (every documented operation, mounted by whoever):
generated requests, valid and invalid, must get a documented 4xx or a success — never a 5xx, never
a hang (each call has a 10 s timeout)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_hardening_support import probe_app

DOCUMENTED = {200, 400, 404, 405, 409, 413, 415, 422, 429, 503, 507}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    root = tmp_path_factory.mktemp("schemathesis")
    with probe_app(root, rate_limit_per_s=0, max_sessions=2) as (client, _, _):
        yield schemathesis.openapi.from_url(f"{client.base_url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
def test_every_operation_answers_documented_statuses_only(case) -> None:
    response = case.call(timeout=10)
    assert response.status_code in DOCUMENTED, (
        case.method,
        case.formatted_path,
        response.status_code,
        response.text[:300],
    )
