from quarry_harness import capture


def test_a_long_text_keeps_its_head_and_tail_and_says_how_much_was_cut(monkeypatch):
    monkeypatch.setattr(capture, "_budget", 10)
    text = "abcde" + "x" * 100 + "vwxyz"
    cut = capture._truncate(text)
    assert cut.startswith("abcde\n") and cut.endswith("\nvwxyz")
    assert "[100 characters truncated]" in cut


def test_a_text_within_the_budget_is_unchanged(monkeypatch):
    monkeypatch.setattr(capture, "_budget", 10)
    assert capture._truncate("0123456789") == "0123456789"
    assert capture._truncate(None) is None


def test_printing_a_million_characters_keeps_only_what_the_budget_shows(monkeypatch):
    monkeypatch.setattr(capture, "_budget", 100)
    out = capture._Capture()
    out.write("HEAD")
    for _ in range(10000):
        out.write("y" * 100)
    out.write("TAIL")
    value = out.getvalue()
    assert value.startswith("HEAD") and value.endswith("TAIL")
    assert len(value) < 200
    # What was kept is bounded too, not only what is shown.
    assert sum(len(p) for p in out._head) <= 100 and len(out._tail) <= 100


def test_writing_bytes_is_a_type_error_as_for_a_real_text_stream():
    out = capture._Capture()
    try:
        out.write(b"bytes")
    except TypeError as e:
        assert "must be str" in str(e)
    else:
        raise AssertionError("bytes were accepted")
