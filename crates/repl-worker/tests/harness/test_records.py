import pytest

from quarry_harness.records import records


def test_key_value_lines_become_records_with_numbers_typed():
    rs = records("Date: Jan 02, 2023 || User: 311 || Score: 4.5 || Text: Great service\nnot a record\n")
    assert len(rs) == 1
    assert rs[0] == {"Date": "Jan 02, 2023", "User": 311, "Score": 4.5, "Text": "Great service"}
    assert rs[0].line == 1


def test_json_lines_become_records():
    rs = records('{"id": 1, "text": "what is a bird?"}\n{"id": 2, "text": "who wrote it?"}\n')
    assert [r["id"] for r in rs] == [1, 2]
    assert [r.line for r in rs] == [1, 2]


def test_a_markdown_table_becomes_one_record_per_row_under_its_header():
    text = "Intro\n\n| id | question |\n|---|---|\n| 7 | where is it? |\n| 8 | how many? |\n\nAfter\n"
    rs = records(text)
    assert [(r["id"], r["question"]) for r in rs] == [(7, "where is it?"), (8, "how many?")]
    assert rs[0].line == 5


def test_log_lines_give_time_keys_and_text():
    rs = records("[2024-04-07 10:00] user=42 level=warn :: disk almost full\n")
    assert rs[0]["time"] == "2024-04-07 10:00"
    assert rs[0]["user"] == 42 and rs[0]["level"] == "warn"
    assert rs[0]["text"] == "disk almost full"


def test_text_with_no_record_says_what_a_record_looks_like():
    with pytest.raises(ValueError, match="no line is a record"):
        records("just prose,\nline after line.\n")
