import pytest

from sift_collector.normalise import DocumentRejectedError, Limits, html_to_text, normalise
from sift_common.contracts import EntityRef, IncomingDocument


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


def _controls_everywhere(text: str) -> IncomingDocument:
    return IncomingDocument(
        source=f"wi{text}re",
        external_id=f"id-{text}7",
        url=f"https://news.example/{text}a",
        title=f"Acme{text} rose",
        body=f"Acme rose{text}. Shares{text} climbed.",
        metadata={f"au{text}thor": f"Ann{text} Lee"},
        subjects=[EntityRef(kind="company", name=f"Acme{text} Corp", ticker=f"AC{text}ME")],
    )


@pytest.mark.parametrize(
    "control", ["\x00", "\x01", "\x08", "\x0e", "\x1b", "\x7f", "\x80", "\x9f"]
)
def test_control_characters_are_removed_before_the_content_hash(control: str) -> None:
    clean, dirty = normalise(_controls_everywhere("")), normalise(_controls_everywhere(control))
    assert dirty.content_hash == clean.content_hash  # two copies differing by a NUL: one document
    assert dirty.id == clean.id
    assert dirty.model_dump(exclude={"collected_at"}) == clean.model_dump(exclude={"collected_at"})


def test_control_characters_go_from_html_and_whitespace_controls_separate_words() -> None:
    html = IncomingDocument(source="wire", body="<p>Acme\x00 rose\x01.</p>", content_type="html")
    assert normalise(html).body == "Acme rose."
    spaced = IncomingDocument(source="wire", body="Acme\x0brose\x1fagain\x85today\tnow\r\nend")
    assert normalise(spaced).body == "Acme rose again today now\nend"
    kept = normalise(IncomingDocument(source="wire", body="b", metadata={"note": "a\tb\nc\r"}))
    assert kept.metadata["note"] == "a\tb\nc\r"  # tab, line feed and carriage return stay


def test_a_subject_of_only_control_characters_is_refused() -> None:
    incoming = IncomingDocument(
        source="wire", body="text", subjects=[EntityRef(kind="company", name="\x00\x01")]
    )
    with pytest.raises(DocumentRejectedError) as refused:
        normalise(incoming)
    assert refused.value.field == "subjects"
