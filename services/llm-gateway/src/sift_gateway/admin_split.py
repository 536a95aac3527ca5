"""A/B tests of an alias, for operators (admin key), beside the switches in `ops.py`:

    PUT  /admin/aliases/{alias}/split   {"weights": {"a": 80, "b": 20}}   start or re-weigh
    POST /admin/aliases/{alias}/promote {"profile": "b"}                  end it on one arm

A split checks every new arm as a switch checks its target (`Switcher.split`); a promotion is
the safe switch to one arm. Both answer the switch record: 200 split/promoted, 409 refused or
rolled back, with the numbers either way; bad input is 400 (404: no such alias) naming the
field.
"""

from aiohttp import web

from sift_gateway.errors import ApiError, invalid_request
from sift_gateway.ops import (
    SWITCHER_KEY,
    alias_store_errors,
    existing_alias,
    json_object,
    record_answer,
)
from sift_gateway.outcome import CALLER_KEY
from sift_gateway.registry import Registry
from sift_gateway.split import WeightsError, parse_weights
from sift_gateway.state import STATE_KEY


def checked_weights(registry: Registry, alias: str, raw: object) -> dict[str, int]:
    """The weights, each naming a known profile of the alias's kind."""
    try:
        weights = parse_weights(raw)
    except WeightsError as exc:
        raise invalid_request(str(exc), exc.field) from None
    known = ", ".join(sorted(registry.profiles))
    for name in weights:
        if name not in registry.profiles:
            raise invalid_request(f"{name!r} is not a known profile ({known})", f"weights.{name}")
        if registry.kind_conflict(alias, name):  # as a switch answers it
            kind = registry.profiles[name].profile.kind
            raise ApiError(
                409,
                f"{name!r} is {kind}; alias {alias!r} serves another kind",
                error_type="invalid_request_error",
                param=f"weights.{name}",
            )
    return weights


async def admin_split(request: web.Request) -> web.Response:
    registry = request.app[STATE_KEY].registry
    body = await json_object(request, '{"weights": {"<profile>": 80, "<profile>": 20}}')
    alias = existing_alias(request, "an A/B test splits an existing alias")
    weights = checked_weights(registry, alias, body.get("weights"))
    with alias_store_errors(alias):
        record = await request.app[SWITCHER_KEY].split(alias, weights, request.get(CALLER_KEY))
    return record_answer(record, "split")


async def admin_promote(request: web.Request) -> web.Response:
    body = await json_object(request, '{"profile": "<arm>"}')
    alias = existing_alias(request, "an A/B test splits an existing alias")
    switcher = request.app[SWITCHER_KEY]
    with alias_store_errors(alias):  # the database's view: another replica may have split it
        arms = await switcher.store.current_weights(alias)
    if arms is None:
        raise ApiError(
            409,
            f"alias {alias!r} is not under an A/B split (a plain switch moves it)",
            error_type="invalid_request_error",
            code="not_split",
        )
    profile = body.get("profile")
    if not isinstance(profile, str) or profile not in arms:
        raise invalid_request(f"'profile' must name an arm ({', '.join(sorted(arms))})", "profile")
    with alias_store_errors(alias):
        record = await switcher.switch(alias, profile, request.get(CALLER_KEY), done="promoted")
    return record_answer(record, "promoted")


def add_routes(app: web.Application) -> None:
    app.router.add_put("/admin/aliases/{alias}/split", admin_split)
    app.router.add_post("/admin/aliases/{alias}/promote", admin_promote)
