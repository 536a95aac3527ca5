"""What the request handlers share: wired once in the app's start-up, read on every request."""

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from sift_gateway.metrics import GatewayMetrics
from sift_gateway.registry import Registry
from sift_gateway.request_log import RequestLogWriter
from sift_gateway.upstream import UpstreamCaller
from sift_gateway.validation import RequestLimits


@dataclass
class GatewayState:
    registry: Registry
    metrics: GatewayMetrics
    session: aiohttp.ClientSession
    caller: UpstreamCaller
    request_log: RequestLogWriter | None
    limits: RequestLimits = field(default_factory=RequestLimits)
    started: bool = field(default=False)


STATE_KEY = web.AppKey("sift_gateway_state", GatewayState)
