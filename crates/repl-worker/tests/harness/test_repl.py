import json


def run(core, code):
    return json.loads(core.execute(code))


def test_the_last_expression_is_the_value_and_names_persist(repl):
    core, _ = repl
    assert run(core, "x = 20\nx + 1")["value"] == "21"
    assert run(core, "x * 2")["value"] == "40"


def test_a_syntax_error_applies_none_of_the_cell(repl):
    core, _ = repl
    result = run(core, "y = 1\ndef (:")
    assert result["error"].startswith("SyntaxError")
    assert "NameError" in run(core, "y")["error"]


def test_final_and_final_var_set_the_answer_of_that_cell_only(repl):
    core, _ = repl
    assert run(core, "FINAL('forty-two')")["final_answer"] == "forty-two"
    assert run(core, "answer = [1, 2]\nFINAL_VAR('answer')")["final_answer"] == "[1, 2]"
    assert run(core, "1")["final_answer"] is None


def test_a_reserved_name_survives_assignment(repl):
    core, _ = repl
    run(core, "grep = None")
    assert run(core, "callable(grep)")["value"] == "True"


def test_an_error_that_names_the_change_to_make_becomes_the_hint(repl):
    core, _ = repl
    result = run(core, "import datetime\ndatetime.datetime.strptime('Apr 07, 2024', '%Y-%m-%d')")
    assert "ValueError" in result["error"]
    assert result["hint"] == "ValueError: time data 'Apr 07, 2024' does not match format '%Y-%m-%d'"


def test_an_error_without_a_fix_has_no_hint(repl):
    core, _ = repl
    assert "hint" not in run(core, "1 / 0")


def test_a_host_function_s_failure_is_a_host_error_naming_the_function(repl):
    core, _ = repl
    result = run(core, "grep('x')")
    assert "HostError: grep: no host function" in result["error"]


def test_host_calls_reach_the_host_with_their_arguments(repl):
    core, answers = repl
    answers["search"] = lambda query, k: [{"path": "a.txt", "line": 1, "text": query * k}]
    assert run(core, "search('ab', k=2)[0]['text']")["value"] == "'abab'"
