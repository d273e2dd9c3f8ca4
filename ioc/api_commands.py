"""`ioc api [serve | openapi]` and `ioc tokens create | list | revoke`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.table import Table

from api.app import create_app, wrap
from api.store import TokenError, create_token, list_tokens, revoke_token
from ioc.console import connect, console, err_console, fail, settings_from
from rules import RuleError, load_rules
from sinks.connect import refused_logins
from streams.settings import Settings

api_app = typer.Typer(help="The incident API.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens, one per person.", no_args_is_help=True)
OPENAPI = Path("docs/api/openapi.json")


def _token_key(settings: Settings) -> bytes:
    if settings.api.token_key is None:
        raise fail("IOC_API__TOKEN_KEY is not set: tokens are hashed with it", code=2)
    return settings.api.token_key.get_secret_value().encode()


@api_app.command("serve")
def serve(ctx: typer.Context) -> None:
    """Serve the API with uvicorn on IOC_API__HOST:IOC_API__PORT."""
    import uvicorn

    settings = settings_from(ctx)
    _token_key(settings)
    try:
        ruleset = load_rules(settings.rules)
    except RuleError as exc:
        raise fail("invalid rules:\n  " + "\n  ".join(exc.problems), code=2) from None
    if refused := refused_logins(settings.db, ("api",)):
        raise fail("cannot start the API: " + "; ".join(refused))
    app = wrap(create_app(settings, ruleset), settings)
    # uvicorn's access log prints raw paths, which hold link tokens: the app logs routes instead
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, access_log=False,
                log_level="warning", server_header=False)  # fmt: skip


def openapi_document(settings: Settings) -> dict[str, Any]:
    key = settings.api.token_key or SecretStr("openapi")  # the document does not use the key
    local = settings.model_copy(update={"api": settings.api.model_copy(update={"token_key": key})})
    return create_app(local, load_rules(local.rules)).openapi()


@api_app.command("openapi")
def openapi(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Where to write it.")] = OPENAPI,
) -> None:
    """Write the OpenAPI document (committed as docs/api/openapi.json)."""
    document = openapi_document(settings_from(ctx))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    console.print(f"wrote {out}", highlight=False)


@tokens_app.command("create")
def tokens_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option(help="The person the token is for.")],
    role: Annotated[str, typer.Option(help="viewer, officer or admin.")],
    by: Annotated[str, typer.Option(help="Who creates it.")] = "cli",
) -> None:
    """Create a token and print it once; only its keyed hash is stored."""
    settings = settings_from(ctx)
    key = _token_key(settings)
    with connect(settings, "api") as conn:
        try:
            made = create_token(conn, key, name, role, by)
        except TokenError as exc:
            raise fail(str(exc), code=2) from None
    err_console.print(f"token {made.id} for {name} ({role}); it is shown once:", highlight=False)
    print(made.token)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context) -> None:
    """Tokens (never their secrets): id, person, role, created, last used, revoked."""
    settings = settings_from(ctx)
    with connect(settings, "api") as conn:
        rows = list_tokens(conn)
    table = Table(title=f"{len(rows)} tokens")
    for column in ("id", "name", "role", "created", "last used", "revoked"):
        table.add_column(column, no_wrap=column == "id")
    for row in rows:
        table.add_row(row["id"], row["name"], row["role"], f"{row['created_at']:%Y-%m-%d %H:%M}",
                      f"{row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "",
                      f"{row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "")  # fmt: skip
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, token_id: str) -> None:
    """Revoke a token at once."""
    settings = settings_from(ctx)
    with connect(settings, "api") as conn:
        try:
            revoke_token(conn, token_id)
        except TokenError as exc:
            raise fail(str(exc)) from None
    console.print(f"token {token_id} revoked", highlight=False)
