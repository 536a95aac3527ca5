import pytest

from sift_archiver.chunking import chunk_text, embedding_text


def test_short_text_is_one_chunk_spanning_its_words() -> None:
    (chunk,) = chunk_text("  hello brave   world ", words=10, overlap=2)
    assert (chunk.index, chunk.start, chunk.end, chunk.text) == (0, 2, 21, "hello brave   world")


def test_long_text_windows_overlap_and_keep_offsets() -> None:
    text = " ".join(f"w{n}" for n in range(25))
    chunks = chunk_text(text, words=10, overlap=3)
    assert [c.text.split()[0] for c in chunks] == ["w0", "w7", "w14", "w21"]
    assert chunks[-1].text.split()[-1] == "w24"
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text.split()) <= 10
    assert chunks[1].text.split()[:3] == chunks[0].text.split()[-3:]


def test_exact_window_has_no_empty_tail() -> None:
    assert len(chunk_text(" ".join(["a"] * 10), words=10, overlap=3)) == 1


def test_blank_text_has_no_chunks_and_bad_overlap_is_refused() -> None:
    assert chunk_text("   ") == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("a b", words=4, overlap=4)


def test_title_comes_first() -> None:
    assert embedding_text("Title", "Body") == "Title\n\nBody"
    assert embedding_text(None, "Body") == "Body"
