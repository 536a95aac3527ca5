"""`sift model`: switch a gateway alias to another model profile safely, A/B test two
profiles behind one alias, and see the history.

    sift model switch chat qwen-7b     fit check, warm-up, switch, verification, rollback
    sift model switch chat qwen-7b --force     no checks (the gateway's PUT), still recorded
    sift model split chat qwen-3b=80 qwen-7b=20    an A/B test, sticky per document
    sift model promote chat qwen-7b    end the test: the whole alias to one arm, safely
    sift model history [--alias chat]  every switch asked for, newest first

The gateway does the work (`POST /admin/aliases/{alias}/switch`, `PUT .../split`, `POST
.../promote`; docs/gateway.md "Switching models"); this prints its numbers and outcome. The
gateway comes from SIFT_GATEWAY_URL, its admin key from SIFT_GATEWAY_ADMIN_KEY (unset: no key,
for an open development gateway). Exit 0 when done, 1 when refused or rolled back, 2 when the
request itself failed.
"""

import json
import os
from typing import Annotated, Any

import httpx
import typer

from sift_common.settings import GatewaySettings, load_settings

ADMIN_KEY_VARIABLE = "SIFT_GATEWAY_ADMIN_KEY"
SWITCH_TIMEOUT_S = 600.0  # fit check, warm-up and verification run real requests

app = typer.Typer(
    name="model",
    help="Switch a gateway alias to another model profile, or A/B test profiles behind it "
    "(checked, verified, recorded).",
    no_args_is_help=True,
)


def _client() -> httpx.Client:
    base = str(load_settings(GatewaySettings).gateway_url).rstrip("/")
    key = os.environ.get(ADMIN_KEY_VARIABLE)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=base, headers=headers, timeout=SWITCH_TIMEOUT_S)


def _call(method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        with _client() as http:
            return http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"sift model: cannot reach the gateway (SIFT_GATEWAY_URL): {exc}", err=True)
        raise typer.Exit(2) from None


def _fail(response: httpx.Response) -> typer.Exit:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:500]
    hint = f" (is {ADMIN_KEY_VARIABLE} an admin key?)" if response.status_code in (401, 403) else ""
    typer.echo(
        f"sift model: the gateway answered {response.status_code}: {message}{hint}", err=True
    )
    return typer.Exit(2)


@app.command()
def switch(
    alias: Annotated[str, typer.Argument(help="the alias clients ask for, e.g. chat")],
    profile: Annotated[str, typer.Argument(help="the model profile to point it at")],
    force: Annotated[
        bool, typer.Option("--force", help="skip the fit check and verification")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the gateway's JSON")] = False,
) -> None:
    """Point ALIAS at PROFILE: refused when it does not fit or fails its warm-up, rolled back
    when it fails through the alias."""
    if force:
        response = _call("PUT", f"/admin/aliases/{alias}", json={"profile": profile})
        if response.status_code != 200:
            raise _fail(response)
        typer.echo(f"switched (forced, no checks): {alias} -> {profile}")
        return
    response = _call("POST", f"/admin/aliases/{alias}/switch", json={"profile": profile})
    _conclude(response, "switched", as_json)


@app.command()
def split(
    alias: Annotated[str, typer.Argument(help="the alias clients ask for, e.g. chat")],
    arms: Annotated[
        list[str],
        typer.Argument(help="PROFILE=PERCENT for each arm, at least two, summing to 100"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print the gateway's JSON")] = False,
) -> None:
    """A/B test: split ALIAS's traffic between profiles by weight, e.g. `sift model split chat
    qwen-3b=80 qwen-7b=20`. Sticky: one document (one entity's digest) always gets the same
    arm, on every gateway replica. Each arm not serving the alias yet gets the switch's fit
    check and warm-up first; refused when one fails. `sift report` compares the arms; `sift
    model promote` ends the test."""
    weights = parse_arms(arms)
    response = _call("PUT", f"/admin/aliases/{alias}/split", json={"weights": weights})
    _conclude(response, "split", as_json)


@app.command()
def promote(
    alias: Annotated[str, typer.Argument(help="the alias under an A/B split")],
    profile: Annotated[str, typer.Argument(help="the arm that won")],
    as_json: Annotated[bool, typer.Option("--json", help="print the gateway's JSON")] = False,
) -> None:
    """End ALIAS's A/B test on PROFILE: the safe switch to that arm (fit check, warm-up,
    verification; rolled back to the split if it fails), the weights cleared, recorded as
    `promoted`."""
    response = _call("POST", f"/admin/aliases/{alias}/promote", json={"profile": profile})
    _conclude(response, "promoted", as_json)


def parse_arms(arms: list[str]) -> dict[str, int]:
    """`["a=80", "b=20"]` → `{"a": 80, "b": 20}`; the gateway judges the sum and the names."""
    weights: dict[str, int] = {}
    for arm in arms:
        name, _, percent = arm.rpartition("=")
        if not name or not percent.isdigit():
            raise typer.BadParameter(
                f"{arm!r} is not PROFILE=PERCENT (e.g. qwen-7b=20)", param_hint="ARMS"
            )
        weights[name] = int(percent)
    return weights


def _conclude(response: httpx.Response, done: str, as_json: bool) -> None:
    """Print the switch record; exit 1 unless its outcome is `done`, 2 on any other answer."""
    if response.status_code not in (200, 409) or "outcome" not in response.json():
        raise _fail(response)
    record = response.json()
    typer.echo(json.dumps(record, indent=2) if as_json else render_switch(record))
    if record["outcome"] != done:
        raise typer.Exit(1)


@app.command()
def history(
    alias: Annotated[str | None, typer.Option(help="only this alias")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Every switch asked of the gateway, newest first: who, from, to, outcome, why."""
    params: dict[str, Any] = {"limit": limit} | ({"alias": alias} if alias else {})
    response = _call("GET", "/admin/alias-switches", params=params)
    if response.status_code != 200:
        raise _fail(response)
    switches = response.json()["switches"]
    if as_json:
        typer.echo(json.dumps(switches, indent=2))
        return
    for row in switches:
        typer.echo(
            f"{row['at']}  {row['alias']}: {row['from_profile']} -> {row['to_profile']}  "
            f"{row['outcome']}  by {row['requested_by'] or '-'}"
            + (f"  ({row['reason']})" if row["reason"] else "")
        )
    if not switches:
        typer.echo("no switches recorded")


def render_switch(record: dict[str, Any]) -> str:
    """The outcome first, then the numbers it rests on (for a split, each new arm's)."""
    numbers = record.get("numbers") or {}
    weights = numbers.get("weights")  # a split's (or a refused split's)
    target = record["to_profile"]
    if weights:
        target = " ".join(f"{arm}={percent}" for arm, percent in sorted(weights.items()))
    lines = [f"{record['outcome']}: {record['alias']} {record['from_profile']} -> {target}"]
    if record.get("reason"):
        lines.append(f"  reason: {record['reason']}")
    for arm, checked in sorted((numbers.get("checked") or {}).items()):
        lines.append(f"  arm {arm}:")
        lines += ["  " + line for line in _numbers_lines(checked)]
    return "\n".join(lines + _numbers_lines(numbers))


def _numbers_lines(numbers: dict[str, Any]) -> list[str]:
    lines = []
    fit = numbers.get("fit") or {}
    estimate = fit.get("estimate")
    if estimate:
        lines.append(
            f"  estimate: {estimate['total_gib']} GiB (weights {estimate['weights_gib']}, "
            f"KV cache {estimate['kv_cache_gib']}) on a {estimate['device_memory_gib']} GiB "
            f"device, fits: {estimate['fits']}"
        )
    for engine in fit.get("engines", []):
        tokens = engine["kv_cache_tokens"]
        kv = "not reported" if tokens is None else f"{tokens} tokens"
        if engine.get("full_length_sequences") is not None:
            kv += f" ({engine['full_length_sequences']} full-length sequences)"
        lines.append(
            f"  engine {engine['url']}: max_model_len {engine['max_model_len']}, KV cache {kv}"
            + (f", error: {engine['error']}" if engine.get("error") else "")
        )
    for check in numbers.get("warm_up", []):
        lines.append(_check_line("warm-up", check))
    if "after_switch" in numbers:
        lines.append(_check_line("through the alias", numbers["after_switch"]))
    return lines


def _check_line(label: str, check: dict[str, Any]) -> str:
    verdict = "ok" if check.get("ok") else f"FAILED: {check.get('detail')}"
    return f"  {label} {check.get('url', '')}: {verdict} ({check.get('ms')} ms)"
