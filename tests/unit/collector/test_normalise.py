import pytest

from sift_collector.normalise import DocumentRejectedError, Limits, html_to_text, normalise
from sift_common.contracts import IncomingDocument


def test_html_is_reduced_to_text_with_paragraphs_kept() -> None:
    html = "<head><style>p{}</style></head><p>Acme  <b>rose</b>.</p><script>x()</script><p>Next</p>"
    document = normalise(IncomingDocument(source="wire", body=html, content_type="html"))
    assert document.body == "Acme rose.\nNext"
    assert html_to_text("<p>a</p><p>b</p>").split() == ["a", "b"]


def test_language_is_detected_and_the_url_canonicalised() -> None:
    document = normalise(
        IncomingDocument(
            source="wire",
            body="삼성전자 주가가 크게 올랐다. 반도체 실적 개선 기대감 때문이다.",
            url="HTTPS://News.Example/a/?utm_source=x",
        )
    )
    assert document.language == "ko"
    assert document.url == "https://news.example/a"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"body": "x" * 101}, "body"),
        ({"body": "<p> </p>", "content_type": "html"}, "body"),
        ({"url": "not a url"}, "url"),
        ({"source": "\u0085"}, "source"),  # only a control/whitespace character
    ],
)
def test_refusals_name_the_field(fields: dict[str, str], field: str) -> None:
    incoming = IncomingDocument.model_validate({"source": "wire", "body": "text", **fields})
    with pytest.raises(DocumentRejectedError) as refused:
        normalise(incoming, Limits(max_body_chars=100))
    assert refused.value.field == field
