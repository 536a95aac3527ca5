"""Reading model profiles: environment expansion, references checked, clear failures."""

from pathlib import Path

import pytest
import yaml

from sift_gateway.profiles import GatewayConfig, ProfileError, expand_env, load_config


def chat(**extra: object) -> dict[str, object]:
    return {"kind": "chat", "served_model": "m", "replicas": ["http://a:8000"], **extra}


def embed(**extra: object) -> dict[str, object]:
    return {"kind": "embeddings", "served_model": "e", "replicas": ["http://b:8000"], **extra}


def write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def test_expand_env_uses_the_variable_then_the_default() -> None:
    text = "a: ${HOST}\nb: ${PORT:-8000}\nc: ${EMPTY:-}\nd: ${SET:-unused}"
    expanded = expand_env(text, {"HOST": "gpu1", "SET": "given"})
    assert expanded == "a: gpu1\nb: 8000\nc: \nd: given"


def test_expand_env_without_default_names_the_missing_variable() -> None:
    with pytest.raises(ProfileError, match=r"\$\{VLLM_URL\}.*VLLM_URL is not set"):
        expand_env("replicas: [${VLLM_URL}]", {})


def test_expand_env_leaves_other_dollar_text_alone() -> None:
    assert expand_env("price: $5 ${lower}", {}) == "price: $5 ${lower}"


def test_load_config_expands_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIFT_TEST_CHAT_URL", "http://gpu7:8001")
    path = write(
        tmp_path,
        """
aliases: {chat: big}
profiles:
  big:
    kind: chat
    served_model: ${SIFT_TEST_MODEL:-qwen}
    replicas: ["${SIFT_TEST_CHAT_URL}"]
    breaker: {failure_threshold: 2}
""",
    )
    config = load_config(path)
    profile = config.profiles["big"]
    assert profile.served_model == "qwen"
    assert [str(url) for url in profile.replicas] == ["http://gpu7:8001/"]
    assert profile.breaker.failure_threshold == 2
    assert profile.breaker.open_for_s == 10.0  # defaults fill the rest
    assert config.aliases == {"chat": "big"}


def test_unknown_alias_target_is_rejected_with_its_names(tmp_path: Path) -> None:
    path = write(tmp_path, {"aliases": {"chat": "nope"}, "profiles": {"big": chat()}})
    with pytest.raises(ProfileError, match="alias 'chat' points at unknown profile 'nope'"):
        load_config(path)


def test_unknown_fallback_is_rejected_with_its_names(tmp_path: Path) -> None:
    path = write(tmp_path, {"profiles": {"big": chat(fallback="small")}})
    with pytest.raises(ProfileError, match="profile 'big': unknown fallback 'small'"):
        load_config(path)


@pytest.mark.parametrize(
    "profiles",
    [
        {"big": chat(fallback="vectors"), "vectors": embed()},
        {"big": chat(fallback="big")},
    ],
    ids=["other-kind", "itself"],
)
def test_fallback_must_be_another_profile_of_the_same_kind(profiles: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="profile 'big': fallback must be another chat profile"):
        GatewayConfig.model_validate({"profiles": profiles})


def test_a_valid_fallback_chain_loads() -> None:
    config = GatewayConfig.model_validate(
        {"profiles": {"big": chat(fallback="small"), "small": chat()}}
    )
    assert config.profiles["big"].fallback == "small"


def test_unknown_fields_and_bad_values_are_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, {"profiles": {"big": chat(replica=["x"])}})
    invalid = r"(?s)profiles\.yaml is invalid.*profiles\.big\.replica"
    with pytest.raises(ProfileError, match=invalid):
        load_config(path)
    path = write(tmp_path, {"profiles": {"big": chat(timeouts={"ttft_s": 0})}})
    with pytest.raises(ProfileError, match="ttft_s"):
        load_config(path)


def test_missing_file_and_bad_yaml_are_profile_errors(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="cannot read profiles file"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_config(write(tmp_path, "profiles: [unclosed"))


def test_the_shipped_local_profiles_load(monkeypatch: pytest.MonkeyPatch) -> None:
    from sift_gateway.settings import DEFAULT_PROFILES

    config = load_config(DEFAULT_PROFILES)
    assert set(config.aliases.values()) <= set(config.profiles)
