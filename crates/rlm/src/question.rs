//! What a question says about how it must be answered: whether its items must be judged, and
//! the labels it lists to judge them by.
//!
//! Read from the question's words as people write them, never from what kind of task an
//! evaluation suite says it is: the checks must hold for wordings nobody tuned to.

use std::sync::LazyLock;

use regex::Regex;

/// A question that says its items carry no label and must be judged. Written for how people
/// phrase it ("the data does not provide the labels; infer each", "No file stores a label",
/// "Nothing in the files says which kind each sentence is", "label each review"), not for one
/// suite's sentence.
static NEEDS_JUDGEMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \b(?:not|no|nothing|never|without)\b[^.?!;]{0,80}?\b(?:label(?:s|led|ed)?|categor(?:y|ies|ised|ized)|kinds?|sentiment)\b
        | \b(?:infer|judge[ds]?|classify|categori[sz]e)\b
        | \blabel\s+(?:each|every|all|them)\b
        | \bdecide\s+which\b",
    )
    .expect("valid regex")
});

/// Whether `question` says its items carry no label and must be judged, so that no count or
/// label can come before a judging call.
pub fn needs_judgement(question: &str) -> bool {
    NEEDS_JUDGEMENT.is_match(question)
}

/// A list the question introduces: what follows a colon, "one of", "either", "choose from",
/// "label each as" or "judged as", up to the end of the sentence.
static LIST_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?::|\bone of\b|\beither\b|\bchoose from\b|\blabel\w*\s+(?:\w+\s+){0,2}?as\b|\bjudged as\b)\s*")
        .expect("valid regex")
});

/// Two or more quoted labels written as a list: `'a', 'b' or 'c'`.
static QUOTED_LIST: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:['"‘“][^'"‘’“”\n]{1,50}['"’”](?:\s*,\s*(?:or\s+|and\s+)?|\s+(?:or|and)\s+)){1,19}['"‘“][^'"‘’“”\n]{1,50}['"’”]"#)
        .expect("valid regex")
});

/// The labels `question` lists for its items, in its order, each once: the longest list of two
/// to twenty short names it writes after a colon or "one of" ("decide which of these it is:
/// description, entity, person"; "labelled as one of these labels (...): numeric value,
/// location, abbreviation"; "Options: Entailment, Contradiction, NotMentioned"), or as quoted
/// names ("'pro' or 'con'"). Empty when it lists none.
///
/// Why the loop reads them itself: asked to pass "the labels the question lists", the 1.5B root
/// split "description and abstract concept" into two labels and wrote "entity" twice (stop 23,
/// docs/results.md), and every record was then judged against the wrong set.
pub fn listed_labels(question: &str) -> Vec<String> {
    let mut lists: Vec<Vec<String>> = Vec::new();
    for m in LIST_START.find_iter(question) {
        let rest = &question[m.end()..];
        let end = sentence_end(rest);
        if let Some(list) = split_list(&rest[..end]) {
            lists.push(list);
        }
    }
    for m in QUOTED_LIST.find_iter(question) {
        if let Some(list) = split_list(m.as_str()) {
            lists.push(list);
        }
    }
    // The longest list is the whole label set; a shorter one (the "least common of 'a', 'b'"
    // options) is a part of it. The first of equal length wins.
    lists.into_iter().fold(Vec::new(), |best, l| if l.len() > best.len() { l } else { best })
}

/// Where the sentence that starts `s` ends: at a full stop, question mark, semicolon or colon
/// followed by a space or the end, or at a line break.
fn sentence_end(s: &str) -> usize {
    let bytes = s.as_bytes();
    for (i, c) in s.char_indices() {
        let next_is_space = bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace());
        match c {
            '\n' | '?' | '!' | ';' => return i,
            '.' | ':' if next_is_space => return i,
            _ => {}
        }
    }
    s.len()
}

/// `a, b, c`, `a, b, or c`, `a or b`, each a short name: two to twenty of them, or `None`.
/// "and" joins a last item only after a comma ("a, b, and c"): without one it may be part of a
/// label ("description and abstract concept").
fn split_list(s: &str) -> Option<Vec<String>> {
    let mut items: Vec<&str> = s.split(',').collect();
    if let Some(last) = items.pop() {
        let last = last.trim();
        let last = last.strip_prefix("or ").or_else(|| last.strip_prefix("and ")).unwrap_or(last);
        match last.split_once(" or ") {
            Some((a, b)) => items.extend([a, b]),
            None => items.push(last),
        }
    }
    let mut labels: Vec<String> = Vec::new();
    for item in items {
        let label = item.trim().trim_matches(|c: char| "'\"‘’“”`".contains(c)).trim();
        if !is_label(label) {
            return None;
        }
        if !labels.iter().any(|l| l.eq_ignore_ascii_case(label)) {
            labels.push(label.to_string());
        }
    }
    (2..=20).contains(&labels.len()).then_some(labels)
}

/// A label is a short name: at most five words and 40 characters, starting with a letter, with
/// none of the marks of a field template (`<user>`, `key=value`, `a || b`) or a sentence.
fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= 40
        && s.split_whitespace().count() <= 5
        && s.chars().next().is_some_and(char::is_alphabetic)
        && !s.contains(|c: char| "<>=|()[]{}:`\"".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_that_need_judgement_are_told_apart_by_their_words_not_by_one_wording() {
        for q in [
            "Each instance can be labelled as one of these labels (the data does not provide the labels; infer each from the meaning of the question).",
            "No file stores a label: read each review fragment and decide which of these it is: con, pro.",
            "Nothing in the files says which kind each sentence is. The possible kinds are objective, subjective.",
            "The reviews are not labelled; label each as positive or negative.",
            "Classify every ticket by urgency and count the urgent ones.",
        ] {
            assert!(needs_judgement(q), "{q}");
        }
        for q in [
            "What is the special magic number for amber-kettle mentioned in the documents?",
            "How many class definitions list `Protocol` directly among their base classes?",
            "Which contract is governed by the laws of Delaware? Exactly one is.",
            "Does it entail, contradict, or not mention the following hypothesis?",
            "List every file that imports the module `json`.",
        ] {
            assert!(!needs_judgement(q), "{q}");
        }
    }

    fn labels(q: &str) -> Vec<String> {
        listed_labels(q)
    }

    #[test]
    fn the_labels_a_question_lists_are_read_whole_in_its_order() {
        let dev = "The following lines contain thousands of general-knowledge questions, one per line. Each line is 'Date: <date> || User: <user> || Instance: <question>'. Each instance is a general-knowledge question that can be labelled as one of these labels (the data does not provide the labels; infer each from the meaning of the question): description and abstract concept, entity, human being, numeric value, location, abbreviation. In the above data, how many questions are labelled as 'entity'?";
        assert_eq!(
            labels(dev),
            ["description and abstract concept", "entity", "human being", "numeric value", "location", "abbreviation"]
        );
        let para = "The .log files in this folder record one question per line: `[date time] user=<user id> :: <text>`. No file stores a label: read each question and decide which of these it is: description, entity, person, number, place, abbreviation. Of 'entity', 'place', which label is given to the fewest questions?";
        assert_eq!(labels(para), ["description", "entity", "person", "number", "place", "abbreviation"]);
        assert_eq!(
            labels("The reviews are not labelled; label each as positive or negative."),
            ["positive", "negative"]
        );
        assert_eq!(labels("Is each one 'pro' or 'con'? Count the pros."), ["pro", "con"]);
        assert_eq!(
            labels("Options: Entailment, Contradiction, NotMentioned."),
            ["Entailment", "Contradiction", "NotMentioned"]
        );
        assert_eq!(
            labels("Sort them into urgent, routine, and spam, then count each."),
            Vec::<String>::new(),
            "a list after no colon or \"one of\" is not read"
        );
        assert_eq!(labels("The possible kinds are: objective, subjective, objective."), ["objective", "subjective"]);
    }

    #[test]
    fn field_templates_sentences_and_lone_names_are_not_label_lists() {
        for q in [
            "Each line is 'Date: <date> || User: <user> || Instance: <question>'. How many are there?",
            "What is the special magic number for amber-kettle mentioned in the documents?",
            "Note: the files were written in 2023, and some of them are missing pages, according to the index.",
            "How many questions would you label 'entity'?",
            "The CSV files in this folder list questions with the columns date, user_id (the user) and text.",
        ] {
            assert_eq!(labels(q), Vec::<String>::new(), "{q}");
        }
    }
}
