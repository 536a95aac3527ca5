"""What the request handlers share: wired once in the app's start-up, read on every request."""

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from sift_gateway.metrics import GatewayMetrics
from sift_gateway.registry import Registry
from sift_gateway.replay import Replays
from sift_gateway.request_log import RequestLogWriter
from sift_gateway.upstream import UpstreamCaller
from sift_gateway.validation import RequestLimits
from sift_gateway.wake import Waker


@dataclass
class GatewayState:
    registry: Registry
    metrics: GatewayMetrics
    session: aiohttp.ClientSession
    caller: UpstreamCaller
    request_log: RequestLogWriter | None
    waker: Waker
    limits: RequestLimits = field(default_factory=RequestLimits)
    replays: Replays = field(default_factory=lambda: Replays(ttl_s=0, max_answers=0))
    started: bool = field(default=False)


STATE_KEY = web.AppKey("sift_gateway_state", GatewayState)
