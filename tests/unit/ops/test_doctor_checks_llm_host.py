"""`sift doctor`'s judging of engines, breakers, request logs and the machine; the profiles
file and nvidia-smi line readers."""

from pathlib import Path

import pytest

from sift_common.ops.doctor_checks_host import (
    DiskReading,
    GpuReading,
    judge_disk,
    judge_gpu,
    judge_memory,
)
from sift_common.ops.doctor_checks_llm import (
    BreakerReading,
    EngineReading,
    ProfileStats,
    judge_breakers,
    judge_engine,
    judge_request_logs,
)
from sift_common.ops.doctor_host import parse_gpu_line
from sift_common.ops.doctor_probes import ProfilesUnreadable, profile_engines

GW = "http://gw:8100"


def test_an_engine_with_a_full_kv_cache_warns_and_a_quiet_one_is_ok() -> None:
    full = judge_engine(EngineReading("chat", "http://e:1", running=30, waiting=4, kv_cache=0.95))
    quiet = judge_engine(EngineReading("chat", "http://e:1", running=1, waiting=0, kv_cache=0.1))
    assert full.status == "warn"
    assert "KV cache 95%" in full.what
    assert quiet.status == "ok"
    assert "1 running, 0 waiting, KV cache 10%" in quiet.what


def test_an_unreachable_engine_or_one_the_gateway_cannot_probe_fails() -> None:
    down = judge_engine(EngineReading("chat", "http://e:1", error="ConnectError"))
    unhealthy = judge_engine(
        EngineReading("chat", "http://e:1", running=0, gateway_healthy=False, gateway_error="503")
    )
    assert down.status == unhealthy.status == "fail"
    assert "http://e:1/metrics" in down.what
    assert "503" in unhealthy.what
    assert down.fix is not None
    assert "curl -sf http://e:1/health" in down.fix


def test_an_engine_without_the_metrics_says_unknown_not_zero() -> None:
    finding = judge_engine(EngineReading("chat", "http://e:1", running=2))
    assert finding.status == "ok"
    assert "waiting unknown" not in finding.what  # the count comes first
    assert "unknown waiting" in finding.what
    assert "KV cache unknown" in finding.what


def test_an_open_breaker_fails_per_upstream() -> None:
    reading = BreakerReading(open_by_upstream={"http://a:1": 1.0, "http://b:1": 0.0})
    findings = judge_breakers(reading, GW)
    assert [(f.name, f.status) for f in findings] == [("http://a:1", "fail")]
    assert "/admin/upstreams" in (findings[0].fix or "")


def test_closed_breakers_are_ok_and_a_closed_metrics_door_is_a_skip() -> None:
    closed = judge_breakers(BreakerReading(open_by_upstream={"http://a:1": 0.0}), GW)
    assert [f.status for f in closed] == ["ok"]
    refused = judge_breakers(BreakerReading(refused=True), GW)
    assert refused[0].status == "skip"
    assert "SIFT_METRICS_KEY" in refused[0].what


def test_an_error_rate_above_five_percent_fails_and_at_it_is_ok() -> None:
    bad, fine = judge_request_logs(
        [ProfileStats("chat", 100, 10, 120.0, 900.0), ProfileStats("embed", 100, 5, 8.0, 20.0)],
        "1h",
    )
    assert bad.status == "fail"
    assert "10 errors (10.0%)" in bad.what
    assert "p95 900 ms" in bad.what
    assert bad.fix is not None
    assert "sift report --since 1h" in bad.fix
    assert fine.status == "ok"


def test_no_requests_is_ok() -> None:
    assert [f.status for f in judge_request_logs([], "1h")] == ["ok"]


@pytest.mark.parametrize(("used", "status"), [(84, "ok"), (86, "warn"), (96, "fail")])
def test_disk_thresholds(used: int, status: str) -> None:
    assert judge_disk(DiskReading("/data", "the database's", used, 100)).status == status


def test_memory_above_ninety_percent_warns_and_without_psutil_is_a_skip() -> None:
    assert judge_memory(0.91).status == "warn"
    assert judge_memory(0.5).status == "ok"
    assert judge_memory(None).status == "skip"


def test_gpu_lines_are_read_and_judged() -> None:
    gpu = parse_gpu_line("0, NVIDIA H100 80GB HBM3, 79000, 81559, 88")
    assert gpu == GpuReading(0, "NVIDIA H100 80GB HBM3", 79000.0, 81559.0, 88.0)
    assert judge_gpu(gpu).status == "warn"  # 97 % of its memory
    cool = parse_gpu_line("1, NVIDIA L4, 100, 23034, [N/A]")
    assert cool.temperature_c is None
    assert judge_gpu(cool).status == "ok"
    hot = GpuReading(2, "L4", 100, 23034, 91)
    assert judge_gpu(hot).status == "warn"
    assert "hotter" in judge_gpu(hot).what


def test_profile_engines_reads_replicas_with_env_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAT_URL", "http://chat:8000/")
    path = tmp_path / "profiles.yaml"
    path.write_text(
        "profiles:\n"
        "  chat: {kind: chat, served_model: m, replicas: ['${CHAT_URL}', 'http://c2:1']}\n"
        "  embed: {kind: embeddings, served_model: e, replicas: ['${EMBED_URL:-http://e:2}']}\n"
    )
    assert profile_engines(path) == [
        ("chat", "http://chat:8000"), ("chat", "http://c2:1"), ("embed", "http://e:2"),
    ]  # fmt: skip


def test_an_unreadable_profiles_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ProfilesUnreadable, match="SIFT_GATEWAY_PROFILES"):
        profile_engines(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("replicas: [1, 2]\n")
    with pytest.raises(ProfilesUnreadable, match="no `profiles` mapping"):
        profile_engines(tmp_path / "bad.yaml")
