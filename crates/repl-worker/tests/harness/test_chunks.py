import pytest

from quarry_harness.documents import chunks


def test_chunks_end_at_line_boundaries_and_know_their_lines():
    text = "".join("line %02d\n" % i for i in range(1, 21))  # 20 lines of 8 characters
    parts = chunks(text, max_chars=40)
    assert "".join(parts) == text
    assert all(p.endswith("\n") for p in parts)
    assert [(p.line_start, p.line_end) for p in parts][:2] == [(1, 5), (6, 10)]
    assert parts[0].source == "<str>:1-5"


def test_an_overlap_repeats_whole_lines_of_the_previous_chunk():
    text = "".join("line %02d\n" % i for i in range(1, 21))
    parts = chunks(text, max_chars=40, overlap=8)
    assert len(parts) > 1
    for before, after in zip(parts, parts[1:]):
        assert after.line_start <= before.line_end
        assert after.startswith(before.splitlines(True)[-1])


def test_a_line_longer_than_a_chunk_is_cut_but_nothing_is_lost():
    text = "short\n" + "z" * 100 + "\nend\n"
    parts = chunks(text, max_chars=30)
    assert "".join(parts) == text
    assert all(len(p) <= 30 for p in parts)


@pytest.mark.parametrize("bad", [{"a": 1}, b"bytes", 42])
def test_chunks_of_something_that_is_not_text_say_what_they_take(bad):
    with pytest.raises(TypeError, match="chunks\\(\\) takes a str"):
        chunks(bad)


def test_a_chunk_size_below_one_is_refused_with_its_name():
    with pytest.raises(ValueError, match="max_chars"):
        chunks("text", max_chars=0)
