import pytest

from sift_common.ids import canonical_url, content_hash, document_id, normalise_content


def test_normalise_content_folds_spacing_and_unicode_forms() -> None:
    assert normalise_content("  Acme\u00a0 beats\n\testimates ") == "Acme beats estimates"
    assert normalise_content("\uff46\uff55\uff4c\uff4c width") == "full width"


def test_content_hash_ignores_whitespace_only_differences() -> None:
    assert content_hash("a  b\n c") == content_hash("a b c")
    assert content_hash("a b c") != content_hash("a b d")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "HTTPS://News.Example:443/a/b/?utm_source=x&z=1&a=2#frag",
            "https://news.example/a/b?a=2&z=1",
        ),
        ("http://news.example:8080/a", "http://news.example:8080/a"),
        ("http://news.example/", "http://news.example"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_document_id_is_stable_and_keyed_by_source_key_and_content() -> None:
    base = document_id("feed", "Body text", url="https://x.example/a?utm_medium=rss")
    assert base == document_id("feed", "Body   text", url="https://X.example/a/")
    assert len(base) == 64
    assert base != document_id("other-feed", "Body text", url="https://x.example/a")
    assert base != document_id("feed", "Body text changed", url="https://x.example/a")
    assert base != document_id("feed", "Body text", url="https://x.example/b")
    # The external id wins over the URL when both are given.
    assert document_id("feed", "t", external_id="42", url="https://a") == document_id(
        "feed", "t", external_id="42", url="https://b"
    )


def test_document_id_requires_a_source() -> None:
    with pytest.raises(ValueError, match="source"):
        document_id("  ", "text")
