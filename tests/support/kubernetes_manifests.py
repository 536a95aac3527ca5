"""deploy/kubernetes rendered once per target, for the tests that read the manifests."""

import copy
from functools import cache
from pathlib import Path

from pydantic_settings import BaseSettings

from sift_analyzer.settings import AnalyzerSettings
from sift_archiver.settings import ArchiverSettings
from sift_collector.settings import CollectorSettings
from sift_gateway.settings import GatewayServiceSettings
from tests.support.kustomize import Manifest, render

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
TARGETS = ["base", "overlays/cpu", "overlays/gpu", "overlays/gpu-scale-to-zero"]
OVERLAYS = TARGETS[1:]
SIFT = {"gateway": 8100, "collector": 8110, "analyzer": 8120, "archiver": 8130}
SETTINGS: dict[str, type[BaseSettings]] = {
    "gateway": GatewayServiceSettings,
    "collector": CollectorSettings,
    "analyzer": AnalyzerSettings,
    "archiver": ArchiverSettings,
}
ENGINES = ("vllm-chat", "vllm-embed")


@cache
def _rendered(target: str) -> tuple[Manifest, ...]:
    return tuple(render(KUBERNETES / target))


def rendered(target: str) -> list[Manifest]:
    """A fresh copy of the rendered objects (tests may change theirs)."""
    return copy.deepcopy(list(_rendered(target)))
