import pytest

from quarry_harness import strategies
from quarry_harness.classify import _gbnf_literal, _match_label
from quarry_harness.records import Record

LABELS = ["description and abstract concept", "entity", "human being", "numeric value", "location",
          "abbreviation"]


@pytest.fixture
def question_labels():
    strategies._set_question_labels(LABELS)
    yield
    strategies._set_question_labels([])


def test_a_reply_names_its_label_exactly_or_by_containing_it():
    assert _match_label("Entity.", LABELS) == "entity"
    assert _match_label("The answer is: human being", LABELS) == "human being"
    assert _match_label("no idea", LABELS) is None


def test_a_label_inside_a_longer_label_does_not_win_over_it():
    assert _match_label("numeric value", ["value", "numeric value"]) == "numeric value"


def test_a_gbnf_literal_escapes_quotes_backslashes_and_newlines():
    assert _gbnf_literal('say "hi"\\\n') == '"say \\"hi\\"\\\\\\n"'


def test_one_label_asked_about_stands_for_the_question_s_list(question_labels, capsys):
    assert strategies._label_set(["entity"]) == LABELS
    assert "the question's own labels" in capsys.readouterr().out


def test_a_label_split_in_two_stands_for_the_question_s_list(question_labels):
    assert strategies._label_set(["description", "abstract concept", "entity"]) == LABELS


def test_labels_the_question_does_not_list_are_kept(question_labels):
    assert strategies._label_set(["spam", "ham"]) == ["spam", "ham"]


def test_a_single_label_without_a_question_list_is_refused():
    with pytest.raises(ValueError, match="at least two"):
        strategies._label_set(["entity"])


def test_a_field_is_found_as_people_write_it():
    rows = [Record({"User_ID": 1, "Text": "a"})]
    assert strategies._field(rows, "user id") == "User_ID"
    assert strategies._field(rows, "user") == "User_ID"
    with pytest.raises(KeyError, match="'User_ID', 'Text'"):
        strategies._field(rows, "date")


def test_the_text_field_is_the_one_with_the_longest_strings():
    rows = [Record({"id": "q1", "question": "what is the capital of France?"})]
    assert strategies._text_field(rows) == "question"
