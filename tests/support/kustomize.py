"""A small renderer for the kustomize features deploy/kubernetes uses, for machines without
kustomize: no PyPI package ships it, and Debian's kubectl (1.20) carries kustomize 2.0, too
old for `patches`. A recent `kubectl kustomize` is the real thing where it exists.

Supported, and nothing else (anything else in a kustomization raises): `resources` (files,
and directories holding a kustomization.yaml), `namespace`, `images` (`name`, `newName`,
`newTag`) and `patches` by file path, each a strategic-merge patch of one object found by
kind and name. The merge follows Kubernetes' strategic merge for the lists these manifests
patch: lists of objects keyed by name (containers, env, volumes, mounts...) merge item by
item, new items first as kustomize writes them; every other list is replaced. Where
`kubectl` exists, a test renders the same overlays with it and compares.
"""

from pathlib import Path
from typing import Any

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "images", "patches"}
# Lists that strategic merge joins by a key rather than replaces (the ones in PodSpec).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "ports": "containerPort",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}

Manifest = dict[str, Any]


def render(directory: Path) -> list[Manifest]:
    """The objects `kustomize build directory` would print (in resource order)."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise ValueError(f"{directory}: kustomization fields not supported here: {unknown}")
    objects: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects += render(path) if path.is_dir() else _load(path)
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, _load(directory / patch["path"]), directory)
    for image in kustomization.get("images", []):
        _set_image(objects, image)
    if "namespace" in kustomization:
        for manifest in objects:
            if manifest["kind"] not in CLUSTER_SCOPED:
                manifest["metadata"]["namespace"] = kustomization["namespace"]
    return objects


def _load(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _apply_patch(objects: list[Manifest], patches: list[Manifest], directory: Path) -> None:
    for patch in patches:
        key = (patch["kind"], patch["metadata"]["name"])
        targets = [m for m in objects if (m["kind"], m["metadata"]["name"]) == key]
        if len(targets) != 1:
            raise ValueError(f"{directory}: patch {key} matches {len(targets)} objects")
        merged = merge(targets[0], patch)
        targets[0].clear()
        targets[0].update(merged)


def merge(base: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge of `patch` onto `base` (a new value; neither argument changes)."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = merge(base[key], value, key) if key in base else value
        return out
    key = MERGE_KEYS.get(field)
    if key and isinstance(base, list) and isinstance(patch, list):
        by_key = {item[key]: item for item in patch}
        new = [item for item in patch if item[key] not in {b[key] for b in base}]
        return new + [merge(item, by_key[item[key]]) if item[key] in by_key else item
                      for item in base]  # fmt: skip
    return patch


def _set_image(objects: list[Manifest], image: dict[str, str]) -> None:
    for manifest in objects:
        spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
        for container in spec.get("containers", []) + spec.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name == image["name"]:
                new_tag = image.get("newTag", tag)
                container["image"] = f"{image.get('newName', name)}:{new_tag}"


def containers(manifest: Manifest) -> list[Manifest]:
    """The containers of a workload's pod template (none for other kinds)."""
    spec = manifest.get("spec", {}).get("template", {}).get("spec", {})
    found: list[Manifest] = spec.get("containers", [])
    return found


def by_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in objects if m["kind"] == kind}
