"""`retail apikeys`: keys for the platform's own HTTP APIs (orders, returns, availability,
inventory events). The secret is printed once, at creation; the store keeps only its hash."""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Annotated

import typer

from cli.common import fail, settings
from cli.output import print_json, print_table
from store import apikeys
from store.db import Store
from store.migrate import upgrade

app = typer.Typer(help="API keys with scopes for the /v1 HTTP APIs.", no_args_is_help=True)

DEV_KEY_NAME = "retail-dev"


def _store() -> Store:
    s = settings()
    upgrade(s.store_url)
    return Store(s.store_url)


def whoami() -> str | None:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container: the key is still created
        return None


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="who or what uses the key, e.g. 'pos-gateway'")],
    scope: Annotated[
        list[str],
        typer.Option("--scope", help=f"repeat for several: {', '.join(apikeys.SCOPES)}"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Create a key and print it once: it cannot be shown again (only its hash is stored)."""
    store = _store()
    try:
        key, secret = apikeys.create_key(store, name, scope, created_by=whoami())
    except ValueError as exc:
        raise fail(str(exc), code=2) from exc
    finally:
        store.dispose()
    if as_json:
        print_json({**key.summary(), "key": secret})
        return
    typer.echo(f"API key {key.id} ({key.name}), scopes: {' '.join(key.scopes)}")
    typer.echo(secret)
    typer.echo("Store it now: it is not shown again. Send it as 'Authorization: Bearer <key>'.", err=True)


@app.command("list")
def list_(
    active: Annotated[bool, typer.Option("--active", help="leave out revoked keys")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """Keys with their scopes, when created, last used (to the minute) and revoked; never secrets."""
    store = _store()
    try:
        keys = apikeys.list_keys(store, include_revoked=not active)
    finally:
        store.dispose()
    if as_json:
        print_json([k.summary() for k in keys])
        return

    def at(value: datetime | None) -> str:
        return value.isoformat(timespec="seconds") if value is not None else ""

    print_table(
        f"{len(keys)} API keys",
        ["id", "name", "scopes", "created", "by", "last used", "revoked"],
        [
            [
                k.id,
                k.name,
                " ".join(k.scopes),
                at(k.created_at),
                k.created_by,
                at(k.last_used_at),
                at(k.revoked_at),
            ]
            for k in keys
        ],
    )


@app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument(help="the key's id (see `retail apikeys list`)")]) -> None:
    """Revoke a key: refused (401) by every API process within RETAIL_API_KEY_CACHE_S."""
    store = _store()
    try:
        key = apikeys.revoke_key(store, key_id)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    finally:
        store.dispose()
    assert key.revoked_at is not None
    typer.echo(f"API key {key.id} ({key.name}) revoked at {key.revoked_at.isoformat(timespec='seconds')}")


def mint_dev_key(store: Store, name: str = DEV_KEY_NAME) -> str:
    """`retail dev` and `retail demo`: a fresh key with every scope, the previous one revoked."""
    _, secret = apikeys.rotate_named_key(store, name, apikeys.SCOPES, created_by=whoami())
    return secret
