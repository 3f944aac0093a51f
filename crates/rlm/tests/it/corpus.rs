//! The RLM's host and `quarry repl --folder`'s host serve the REPL's document functions from
//! the same `Corpus`, so the root model and a person at the REPL get the same hits.

use std::collections::HashMap;
use std::sync::Arc;

use quarry_index::{Document, Folder, Kind, Layout, MemoryCorpus, PageSpan};
use quarry_llm::{ChatRequest, Completion, DeltaSink, LanguageModel};
use quarry_repl::{HostFunctions, PageRef};
use quarry_rlm::host::{RunHost, SubCallStats};
use quarry_rlm::{CancelToken, CorpusHost};
use serde_json::json;

/// A sub model the document functions never call.
struct Unused;

#[async_trait::async_trait]
impl LanguageModel for Unused {
    fn name(&self) -> &str {
        "unused"
    }

    async fn chat_stream(&self, _: &ChatRequest, _: &mut dyn DeltaSink) -> quarry_llm::Result<Completion> {
        Err(quarry_llm::Error::Unsupported("the document functions call no model".into()))
    }
}

fn fixture() -> Folder {
    let span = |number, label: &str, first_line| PageSpan {
        number,
        label: label.into(),
        first_line,
        line_count: 2,
        ocr: false,
        note: None,
    };
    let layout = Layout {
        format: Kind::Pdf,
        extractor: "test".into(),
        pages: vec![span(1, "i", 1), span(2, "1", 3)],
        warnings: Vec::new(),
    };
    let contract = "Consulting Agreement\nContents\nThe fee is 5,000 a month.\nNew York law governs.\n";
    let memo = "call Ann about the fee\nthe needle is 42\nNEEDLE in caps\nneedles, needles\n";
    Folder::from_parts(
        "/data",
        vec![
            (Document { path: "contract.pdf".into(), text: contract.into() }, layout),
            (Document { path: "notes/memo.txt".into(), text: memo.into() }, Layout::text(4)),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rlm_host_and_the_repl_host_give_the_same_grep_search_read_and_files() {
    let folder = fixture();
    // As the loop builds its host (crates/rlm/src/rlm/mod.rs) ...
    let documents: Vec<(String, String)> =
        folder.documents().iter().map(|d| (d.path.clone(), d.text.clone())).collect();
    let layouts: HashMap<String, Layout> = folder.entries().map(|(d, l)| (d.path.clone(), l.clone())).collect();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let rlm = RunHost::new(
        tokio::runtime::Handle::current(),
        Arc::new(Unused),
        documents,
        10,
        None,
        Arc::new(SubCallStats::default()),
        CancelToken::default(),
        tx,
    )
    .with_layouts(layouts);
    // ... and as `quarry repl --folder` does (crates/cli/src/repl.rs).
    let repl = CorpusHost::new(Arc::new(MemoryCorpus::of_folder(&folder)));
    let hosts: [&dyn HostFunctions; 2] = [&rlm, &repl];

    for (pattern, glob, ignore_case) in [
        (r"needle is \d+", None, false),
        ("needle", None, true),
        ("NEEDLE", None, false),
        ("fee", Some("*.txt"), false),
        ("fee|governs", None, false),
        ("zebra", None, false),
    ] {
        let [a, b] = hosts.map(|h| h.grep(pattern, glob, ignore_case, 100).unwrap());
        assert_eq!(a, b, "grep({pattern:?}, {glob:?}, ignore_case={ignore_case})");
    }
    // A regular expression, not a substring; a paged hit names its page.
    let [a, _] = hosts.map(|h| h.grep(r"needle is \d+", None, false, 100).unwrap());
    assert_eq!(a, json!([{ "path": "notes/memo.txt", "line": 2, "text": "the needle is 42" }]));
    let [a, _] = hosts.map(|h| h.grep("governs", None, false, 100).unwrap());
    assert_eq!(
        a,
        json!([{ "path": "contract.pdf", "line": 4, "text": "New York law governs.", "page": 2, "page_label": "1", "page_line": 2 }])
    );
    let [a, _] = hosts.map(|h| h.grep("needle", None, true, 2).unwrap());
    assert_eq!(a.as_array().unwrap().len(), 2, "max_results cuts the hits: {a}");

    for (query, k) in [("needle", 3), ("law governs fee", 2), ("consulting agreement", 1)] {
        let [a, b] = hosts.map(|h| h.search(query, k).unwrap());
        assert_eq!(a, b, "search({query:?}, {k})");
        assert!(!a.as_array().unwrap().is_empty(), "search({query:?}) found nothing");
    }
    let [a, _] = hosts.map(|h| h.search("governs", 1).unwrap());
    assert_eq!((a[0]["path"].as_str(), a[0]["page"].as_u64()), (Some("contract.pdf"), Some(1)), "{a}");

    for (path, start, end, page) in [
        ("notes/memo.txt", Some(2), Some(3), None),
        ("contract.pdf", None, None, Some(PageRef::Label("1".into()))),
        ("contract.pdf", Some(2), None, Some(PageRef::Number(1))),
        ("contract.pdf", None, None, Some(PageRef::Number(7))),
        ("missing.txt", None, None, None),
    ] {
        let [a, b] = hosts.map(|h| h.read(path, start, end, page.as_ref()));
        assert_eq!(a, b, "read({path:?}, {start:?}, {end:?}, {page:?})");
    }
    let [a, b] = hosts.map(|h| h.files("*.txt").unwrap());
    assert_eq!((&a, &b), (&vec!["notes/memo.txt".to_string()], &a));
}
