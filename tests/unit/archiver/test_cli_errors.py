import httpx
import pytest
import typer

from sift_archiver.cli import _fail


def answer(status: int, kind: str, message: str) -> httpx.Response:
    body = {"error": {"message": message, "type": kind, "field": None}}
    return httpx.Response(status, json=body, headers={"Retry-After": "5"})


@pytest.mark.parametrize(
    ("kind", "hint"),
    [
        ("gateway_unavailable", "start it with `make gateway` (and `make vllm-up`)"),
        ("database_unavailable", "start PostgreSQL (`make up`"),
        ("broker_unavailable", "start RabbitMQ with `make up`"),
    ],
)
def test_a_dependency_down_names_it_and_what_to_start(
    kind: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(typer.Exit) as exited:
        _fail(answer(503, kind, f"the {kind.split('_')[0]} is not answering"))
    assert exited.value.exit_code == 2
    printed = " ".join(capsys.readouterr().err.split())
    assert f"the {kind.split('_')[0]} is not answering: {hint}" in printed


def test_other_errors_print_the_status_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited:
        _fail(answer(404, "not_found", "no entity company:nobody"))
    assert exited.value.exit_code == 1
    assert "error 404: no entity company:nobody" in capsys.readouterr().err
