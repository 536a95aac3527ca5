"""Model profiles, read from YAML: what each name means and how to reach it.

A profile names a served model, its vLLM replicas, a fallback profile, an SLA and limits.
Aliases ("chat", "embed") point at a profile and can be switched at runtime, so clients keep
asking for "chat" while operators move it to another model.

Values may use `${VAR}` or `${VAR:-default}` so one file serves laptops, CI and production.
"""

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from sift_common import envsubst


class ProfileError(ValueError):
    """The profiles file is missing, unreadable or inconsistent."""


class Timeouts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    connect_s: float = Field(default=2.0, gt=0)
    ttft_s: float = Field(default=30.0, gt=0, description="Streams: until the first chunk.")
    stall_s: float = Field(default=15.0, gt=0, description="Longest gap between stream chunks.")
    total_s: float = Field(
        default=300.0, gt=0, description="Whole request, retries included (bounds non-streams)."
    )


class BreakerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    failure_threshold: int = Field(default=5, gt=0, description="Consecutive failures to open.")
    success_threshold: int = Field(default=2, gt=0, description="Probe successes to close.")
    open_for_s: float = Field(default=10.0, gt=0, description="Refuse traffic this long.")


class RetrySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=4, gt=0)
    base_delay_s: float = Field(default=0.1, gt=0)
    max_delay_s: float = Field(default=5.0, gt=0)


class Hardware(BaseModel):
    """What the hardware-fit estimate needs to know about the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parameters_billion: float = Field(gt=0)
    weight_bytes_per_parameter: float = Field(default=2.0, gt=0)
    layers: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    kv_bytes_per_value: float = Field(default=2.0, gt=0)
    context_tokens: int = Field(gt=0)
    concurrent_sequences: int = Field(default=1, gt=0)
    device_memory_gib: float | None = Field(default=None, gt=0)


class WakeSettings(BaseModel):
    """Scale to zero (docs/gateway.md, "Waking a stopped engine"): when no replica is up,
    requests wait for one instead of failing; `url` is POSTed once per wake to start the
    engine, or, without it, an autoscaler watching `sift_gateway_demand` starts it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: HttpUrl | None = Field(default=None, description="POSTed once per wake; 2xx: starting.")
    timeout_s: float = Field(default=300.0, gt=0, description="Longest a wake may take.")
    poll_s: float = Field(default=2.0, gt=0, description="Probe the replicas this often meanwhile.")
    hook_timeout_s: float = Field(default=10.0, gt=0, description="Longest the hook may answer in.")


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["chat", "embeddings"]
    served_model: str = Field(min_length=1)
    replicas: list[HttpUrl] = Field(min_length=1)
    fallback: str | None = None
    ttft_target_ms: float = Field(default=2_000, gt=0, description="SLA: time to first token.")
    max_in_flight_per_replica: int = Field(default=32, gt=0)
    max_queue_wait_s: float = Field(default=30.0, gt=0)
    priority_scheduling: bool = Field(
        default=False,
        description="The replicas run vLLM with --scheduling-policy priority: send `priority`.",
    )
    stream_upstream: bool = Field(
        default=True,
        description=(
            "Chat: ask the replicas for a stream (with usage) even for a non-streamed request "
            "and assemble the one answer, so TTFT and time per output token are measured."
        ),
    )
    timeouts: Timeouts = Timeouts()
    breaker: BreakerSettings = BreakerSettings()
    retries: RetrySettings = RetrySettings()
    hardware: Hardware | None = None
    wake: WakeSettings | None = None


class GatewayConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    profiles: dict[str, Profile] = Field(min_length=1)
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references_exist(self) -> "GatewayConfig":
        for alias, target in self.aliases.items():
            if target not in self.profiles:
                raise ValueError(f"alias {alias!r} points at unknown profile {target!r}")
        for name, profile in self.profiles.items():
            if profile.fallback is None:
                continue
            fallback = self.profiles.get(profile.fallback)
            if fallback is None:
                raise ValueError(f"profile {name!r}: unknown fallback {profile.fallback!r}")
            if fallback.kind != profile.kind or profile.fallback == name:
                raise ValueError(
                    f"profile {name!r}: fallback must be another {profile.kind} profile"
                )
        return self


def expand_env(text: str, environ: dict[str, str] | None = None) -> str:
    """`${VAR}` / `${VAR:-default}` expanded; an unset variable is a ProfileError."""
    try:
        return envsubst.expand_env(text, environ)
    except envsubst.MissingVariableError as exc:
        raise ProfileError(
            f"profiles file uses ${{{exc.name}}} but {exc.name} is not set"
        ) from None


def load_config(path: Path) -> GatewayConfig:
    try:
        raw = yaml.safe_load(expand_env(path.read_text()))
    except OSError as exc:
        raise ProfileError(f"cannot read profiles file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"profiles file {path} is not valid YAML: {exc}") from exc
    try:
        return GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError(f"profiles file {path} is invalid: {exc}") from exc
