"""API keys with scopes on the /v1 APIs: 401 without a valid key (with a challenge, nothing
leaked), 403 naming the scope, keys stored hashed, revocation, the CLI, and the open routes
(health, metrics, webhooks) staying open."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from temporalio.client import Client
from typer.testing import CliRunner

from api.auth import check_auth_setting
from backoffice.models import Base
from cli.main import app as cli_app
from settings import Settings, get_settings
from store import apikeys
from store.db import Store
from tests.cli_runner import plain
from tests.platform import platform

runner = CliRunner()

# Every protected route, the scope it needs, and a request that would otherwise be fine or a 4xx.
ROUTES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/v1/orders", "orders:write", {"json": {}, "headers": {"Idempotency-Key": "k"}}),
    ("GET", "/v1/orders/shopify-1", "orders:read", {}),
    ("POST", "/v1/orders/shopify-1/cancel", "orders:write", {"json": {"reason": "x"}}),
    ("POST", "/v1/returns", "returns:write", {"json": {}}),
    ("GET", "/v1/returns/shopify/rma-1", "returns:read", {}),
    ("GET", "/v1/availability", "availability:read", {"params": {"sku": "MUG-01"}}),
    ("POST", "/v1/availability", "availability:read", {"json": {"skus": ["MUG-01"]}}),
    ("POST", "/v1/inventory/events", "inventory:write", {"json": {}}),
]


def detail(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text}"
    body: dict[str, Any] = r.json()["detail"]
    assert body["reason"] and body["detail"]
    return body


# -- store -----------------------------------------------------------------------------------


def test_keys_are_stored_hashed_and_revocation_is_final(store: Store) -> None:
    key, secret = apikeys.create_key(store, "pos-gateway", ["orders:write", "orders:read", "orders:write"])
    assert secret.startswith(f"rck_{key.id}_") and len(secret) > 40
    assert key.scopes == ("orders:write", "orders:read")
    with store.session() as s:
        row = s.scalars(select(apikeys.ApiKeyRow)).one()
        assert secret not in json.dumps([str(getattr(row, c.name)) for c in row.__table__.columns])
        assert row.secret_sha256 == apikeys.digest(secret)

    found = apikeys.authenticate(store, secret)
    assert found is not None and found.id == key.id
    for wrong in (
        "",
        "rck_",
        secret[:-1] + ("A" if secret[-1] != "A" else "B"),
        f"rck_nope_{secret}",
        "x" * 5000,
    ):
        assert apikeys.authenticate(store, wrong) is None
    assert "secret" not in json.dumps(key.summary())

    apikeys.revoke_key(store, key.id)
    assert apikeys.authenticate(store, secret) is None
    again = apikeys.revoke_key(store, key.id)  # harmless, keeps the first time
    assert again.revoked_at is not None
    with pytest.raises(ValueError, match="no API key"):
        apikeys.revoke_key(store, "nope")
    with pytest.raises(ValueError, match="unknown scope 'orders:delete'"):
        apikeys.create_key(store, "x", ["orders:delete"])
    with pytest.raises(ValueError, match="at least one scope"):
        apikeys.create_key(store, "x", [])


def test_rotating_a_named_key_revokes_the_previous_one(store: Store) -> None:
    _, first = apikeys.rotate_named_key(store, "retail-dev", apikeys.SCOPES)
    _, second = apikeys.rotate_named_key(store, "retail-dev", apikeys.SCOPES)
    assert apikeys.authenticate(store, first) is None
    assert apikeys.authenticate(store, second) is not None
    assert [k.name for k in apikeys.list_keys(store, include_revoked=False)] == ["retail-dev"]


def test_the_migration_creates_the_tables_the_models_describe(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = [d for d in compare_metadata(ctx, Base.metadata) if "api_" in repr(d)]
    assert diffs == []


def test_auth_off_is_refused_unless_the_api_listens_on_loopback() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        check_auth_setting(Settings(api_auth="off", api_host=host))
    for host in ("0.0.0.0", "10.1.2.3", "api.example.com"):
        with pytest.raises(RuntimeError, match="loopback"):
            check_auth_setting(Settings(api_auth="off", api_host=host))
    check_auth_setting(Settings(api_auth="keys", api_host="0.0.0.0"))


# -- HTTP ------------------------------------------------------------------------------------


async def test_every_v1_route_needs_a_key_with_its_scope(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, api_key_cache_s=0
    ) as p:
        anonymous = httpx.AsyncClient(transport=p.http._transport, base_url=p.http.base_url)
        wrong_scope = {
            scope: p.new_key(*[s for s in apikeys.SCOPES if s != scope], name=f"all but {scope}")
            for scope in apikeys.SCOPES
        }
        for method, path, scope, kw in ROUTES:
            what = f"{method} {path}"
            r = await anonymous.request(method, path, **kw)
            body = detail(r, 401)
            assert body["reason"] == "unauthorized", what
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="retail-connect"'), what
            for bad in ("Bearer nope", f"Bearer {p.api_key}x", "Basic dXNlcjpwYXNz", "Bearer "):
                r = await anonymous.request(
                    method, path, **{**kw, "headers": {**kw.get("headers", {}), "Authorization": bad}}
                )
                assert detail(r, 401)["reason"] == "unauthorized", (what, bad)
                assert p.api_key not in r.text
            headers = {**kw.get("headers", {}), "Authorization": f"Bearer {wrong_scope[scope]}"}
            r = await anonymous.request(method, path, **{**kw, "headers": headers})
            body = detail(r, 403)
            assert body["reason"] == "insufficient_scope" and body["scope"] == scope, what
            assert scope in body["detail"] and f'scope="{scope}"' in r.headers["WWW-Authenticate"]
            # With the scope (here through X-API-Key) the request gets past authentication.
            headers = {**kw.get("headers", {}), "X-API-Key": p.new_key(scope)}
            r = await anonymous.request(method, path, **{**kw, "headers": headers})
            assert r.status_code not in (401, 403), (what, r.text)
            assert r.status_code < 500, (what, r.text)
        await anonymous.aclose()


async def test_revoked_keys_are_refused_and_use_is_recorded(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(
        client, tmp_path, database_url, worker=False, simulators=False, api_key_cache_s=0
    ) as p:
        key = p.new_key("availability:read", name="checkout")
        anonymous = httpx.AsyncClient(transport=p.http._transport, base_url=p.http.base_url)
        headers = {"X-API-Key": key}
        r = await anonymous.get("/v1/availability", params={"sku": "MUG-01"}, headers=headers)
        assert r.status_code == 200, r.text
        (checkout,) = [k for k in apikeys.list_keys(p.store) if k.name == "checkout"]
        assert checkout.last_used_at is not None
        apikeys.revoke_key(p.store, checkout.id)
        r = await anonymous.get("/v1/availability", params={"sku": "MUG-01"}, headers=headers)
        assert detail(r, 401)["reason"] == "unauthorized"
        assert 'error="invalid_token"' in r.headers["WWW-Authenticate"] and key not in r.text
        await anonymous.aclose()


async def test_health_metrics_and_webhooks_stay_open(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False) as p:
        anonymous = httpx.AsyncClient(transport=p.http._transport, base_url=p.http.base_url)
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/metrics")).status_code == 200
        # Webhooks answer on their signature, not on API keys: unsigned is 401 invalid_signature.
        r = await anonymous.post(
            "/webhooks/shopify", content=b"{}", headers={"Content-Type": "application/json"}
        )
        assert detail(r, 401)["reason"] == "invalid_signature"
        await anonymous.aclose()


async def test_auth_off_lets_calls_through_without_a_key(
    client: Client, tmp_path: Path, database_url: str
) -> None:
    async with platform(client, tmp_path, database_url, worker=False, simulators=False, api_auth="off") as p:
        anonymous = httpx.AsyncClient(transport=p.http._transport, base_url=p.http.base_url)
        r = await anonymous.get("/v1/availability", params={"sku": "MUG-01"})
        assert r.status_code == 200, r.text
        await anonymous.aclose()


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> Iterator[None]:
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    yield
    structlog.reset_defaults()
    get_settings.cache_clear()


def test_cli_creates_lists_and_revokes_keys(cli_env: None, database_url: str) -> None:
    made = runner.invoke(
        cli_app, ["apikeys", "create", "pos", "--scope", "orders:write", "--scope", "orders:read"]
    )
    assert made.exit_code == 0, made.output
    secret = next(line for line in made.stdout.splitlines() if line.startswith("rck_"))
    listed = runner.invoke(cli_app, ["apikeys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (key,) = json.loads(listed.stdout)
    assert key["name"] == "pos" and key["scopes"] == ["orders:write", "orders:read"]
    assert secret not in listed.stdout and key["revoked_at"] is None
    assert secret not in runner.invoke(cli_app, ["apikeys", "list"]).stdout

    bad = runner.invoke(cli_app, ["apikeys", "create", "x", "--scope", "admin"])
    assert bad.exit_code == 2 and "unknown scope 'admin'" in plain(bad.output)

    gone = runner.invoke(cli_app, ["apikeys", "revoke", key["id"]])
    assert gone.exit_code == 0 and "revoked" in gone.stdout
    assert json.loads(runner.invoke(cli_app, ["apikeys", "list", "--json"]).stdout)[0]["revoked_at"]
    assert runner.invoke(cli_app, ["apikeys", "list", "--active", "--json"]).stdout.strip() == "[]"
    assert runner.invoke(cli_app, ["apikeys", "revoke", "nope"]).exit_code == 1
    store = Store(database_url)
    try:
        assert apikeys.authenticate(store, secret) is None
    finally:
        store.dispose()
