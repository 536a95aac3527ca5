"""Runtime state of every profile and replica: routing, breakers, admission, aliases.

Routing is least-outstanding-requests over the replicas whose breaker lets traffic through
and whose health probe has not marked them down. An alias under an A/B split (`split.py`)
resolves to one of its arms by the request's sticky key.
"""

import time
from dataclasses import dataclass, field
from typing import Any

from sift_gateway.admission import AdmissionQueue
from sift_gateway.breaker import CircuitBreaker
from sift_gateway.hardware import estimate_fit
from sift_gateway.profiles import GatewayConfig, Profile
from sift_gateway.split import pick_arm, primary_arm


@dataclass
class Replica:
    url: str
    breaker: CircuitBreaker = field(default_factory=CircuitBreaker)
    outstanding: int = 0
    max_model_len: int | None = None
    healthy: bool = True  # set by the probes; an unprobed replica is given the benefit
    last_probe_ok_at: float | None = None
    last_error: str | None = None

    def available(self, now: float) -> bool:
        return self.healthy and self.breaker.available(now)

    def status(self, now: float) -> dict[str, Any]:
        return {
            "url": self.url,
            "healthy": self.healthy,
            "breaker": self.breaker.state.value,
            "outstanding": self.outstanding,
            "max_model_len": self.max_model_len,
            "last_probe_ok_age_s": (
                None if self.last_probe_ok_at is None else round(now - self.last_probe_ok_at, 1)
            ),
            "last_error": self.last_error,
        }


@dataclass
class ProfileRuntime:
    name: str
    profile: Profile
    replicas: list[Replica]
    admission: AdmissionQueue

    def pick(self, now: float) -> Replica | None:
        """The available replica with the fewest requests outstanding, under its cap."""
        best: Replica | None = None
        for replica in self.replicas:
            if not replica.available(now):
                continue
            if replica.outstanding >= self.profile.max_in_flight_per_replica:
                continue
            if best is None or replica.outstanding < best.outstanding:
                best = replica
        return best

    def any_available(self, now: float) -> bool:
        return any(replica.available(now) for replica in self.replicas)

    def available_capacity(self, now: float) -> int:
        """In-flight slots offered by the replicas that can take traffic now."""
        available = sum(replica.available(now) for replica in self.replicas)
        return available * self.profile.max_in_flight_per_replica

    def max_model_len(self) -> int | None:
        known = [r.max_model_len for r in self.replicas if r.max_model_len is not None]
        return min(known) if known else None


class Registry:
    """Profiles by name, and the aliases that can be re-pointed at runtime."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.aliases = dict(config.aliases)
        self.splits: dict[str, dict[str, int]] = {}  # alias → weights, while an A/B test runs
        self.profiles = {
            name: ProfileRuntime(
                name=name,
                profile=profile,
                replicas=[
                    Replica(str(url).rstrip("/"), CircuitBreaker(**profile.breaker.model_dump()))
                    for url in profile.replicas
                ],
                admission=AdmissionQueue(
                    capacity=profile.max_in_flight_per_replica * len(profile.replicas),
                    max_wait_s=profile.max_queue_wait_s,
                ),
            )
            for name, profile in config.profiles.items()
        }

    def resolve(self, model: str, sticky_key: str | None = None) -> ProfileRuntime | None:
        """An alias, a profile name, or a served model name → the profile that serves it; a
        split alias → the arm `sticky_key` hashes to."""
        weights = self.splits.get(model)
        name = pick_arm(model, weights, sticky_key) if weights else self.aliases.get(model, model)
        if name in self.profiles:
            return self.profiles[name]
        for runtime in self.profiles.values():
            if runtime.profile.served_model == model:
                return runtime
        return None

    def fallback_of(self, runtime: ProfileRuntime) -> ProfileRuntime | None:
        name = runtime.profile.fallback
        return None if name is None else self.profiles[name]

    def switch_alias(self, alias: str, profile: str) -> None:
        """Re-point one alias. A request resolves its alias once, on arrival: one in flight
        keeps the profile it started on."""
        if profile not in self.profiles:
            raise KeyError(profile)
        self.aliases[alias] = profile
        self.splits.pop(alias, None)  # the whole alias goes to `profile`: any A/B test ends

    def split_alias(self, alias: str, weights: dict[str, int]) -> None:
        """Split one alias between profiles by weight (`split.parse_weights` checked them)."""
        unknown = [name for name in weights if name not in self.profiles]
        if unknown:
            raise KeyError(unknown[0])
        self.aliases[alias] = primary_arm(weights)
        self.splits[alias] = dict(weights)

    def apply_aliases(self, stored: dict[str, str]) -> list[str]:
        """Take the aliases another replica (or a restart) left in the database; those naming
        a profile this replica does not have, or of another kind, are skipped and named."""
        skipped = []
        for alias, profile in stored.items():
            if profile not in self.profiles or self.kind_conflict(alias, profile):
                skipped.append(f"{alias} -> {profile}")
                continue
            self.aliases[alias] = profile
        return skipped

    def apply_splits(self, stored: dict[str, dict[str, int] | None]) -> list[str]:
        """Take the splits in the database (None: no split); one naming a profile this replica
        lacks, or of another kind, is skipped and named, and its alias keeps `profile`."""
        skipped = []
        for alias, weights in stored.items():
            if not weights:
                self.splits.pop(alias, None)
            elif all(p in self.profiles and not self.kind_conflict(alias, p) for p in weights):
                self.splits[alias] = dict(weights)
            else:
                skipped.append(f"{alias} -> {weights}")
        return skipped

    def kind_conflict(self, alias: str, profile: str) -> bool:
        current = self.resolve(alias)
        return current is not None and current.profile.kind != self.profiles[profile].profile.kind

    def active_profiles(self) -> list[ProfileRuntime]:
        """Profiles that an alias points at (what readiness requires), else all."""
        arms = {name for weights in self.splits.values() for name in weights}
        names = set(self.aliases.values()) | arms or set(self.profiles)
        return [self.profiles[name] for name in sorted(names)]

    def model_names(self) -> list[str]:
        return sorted({*self.aliases, *self.profiles})

    def describe(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "aliases": dict(self.aliases),
            "splits": {alias: dict(weights) for alias, weights in self.splits.items()},
            "profiles": {
                name: {
                    "kind": runtime.profile.kind,
                    "served_model": runtime.profile.served_model,
                    "fallback": runtime.profile.fallback,
                    "ttft_target_ms": runtime.profile.ttft_target_ms,
                    "max_in_flight_per_replica": runtime.profile.max_in_flight_per_replica,
                    "in_flight": runtime.admission.in_flight,
                    "queued": len(runtime.admission.waiters),
                    "replicas": [replica.status(now) for replica in runtime.replicas],
                    "hardware_fit": (
                        estimate_fit(runtime.profile.hardware).as_dict()
                        if runtime.profile.hardware
                        else None
                    ),
                }
                for name, runtime in self.profiles.items()
            },
        }
