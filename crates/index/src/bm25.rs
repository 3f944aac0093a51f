//! Passages and BM25 ranking over them: what the `rag` baseline retrieves, and what `search` in
//! the REPL answers with.
//!
//! A passage is a run of whole lines of one document, so every hit carries a citable
//! `path:line_start-line_end`. Ranking is Okapi BM25 (k1 = 1.2, b = 0.75, Lucene's defaults) over
//! lower-cased alphanumeric terms. It lives in memory and is rebuilt per folder: a 1M-token
//! folder (4 MB) chunks and indexes in well under a second, which is the scale the baselines and
//! evaluations need. The persistent tantivy index replaces it behind the same [`Passage`] shape.

use std::collections::HashMap;

use crate::Document;

/// A run of whole lines of one document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Passage {
    pub path: String,
    /// 1-based, inclusive.
    pub line_start: usize,
    pub line_end: usize,
    pub text: String,
}

/// Splits each document into passages of at most `max_chars` characters (a single longer line
/// is cut at a character boundary and keeps its line number). Passages never span documents.
pub fn passages(documents: &[Document], max_chars: usize) -> Vec<Passage> {
    let max_chars = max_chars.max(1);
    let mut out = Vec::new();
    for doc in documents {
        let mut current = String::new();
        let mut start = 1;
        let mut end = 0;
        for (i, line) in doc.text.lines().enumerate() {
            let n = i + 1;
            let needed = current.chars().count() + line.chars().count() + usize::from(!current.is_empty());
            if !current.is_empty() && needed > max_chars {
                out.push(Passage { path: doc.path.clone(), line_start: start, line_end: end, text: current });
                current = String::new();
            }
            if current.is_empty() {
                start = n;
            }
            if line.chars().count() > max_chars {
                // A line longer than a passage: its pieces all cite this line.
                let chars: Vec<char> = line.chars().collect();
                for piece in chars.chunks(max_chars) {
                    out.push(Passage {
                        path: doc.path.clone(),
                        line_start: n,
                        line_end: n,
                        text: piece.iter().collect(),
                    });
                }
                continue;
            }
            if !current.is_empty() {
                current.push('\n');
            }
            current.push_str(line);
            end = n;
        }
        if !current.trim().is_empty() {
            out.push(Passage { path: doc.path.clone(), line_start: start, line_end: end, text: current });
        }
    }
    out
}

/// Words too common to rank by.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "do", "does", "for", "from", "how", "in", "is", "it", "of", "on",
    "or", "that", "the", "this", "to", "was", "what", "which", "who", "with",
];

fn terms(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).filter_map(|w| {
        let w = w.to_lowercase();
        (!STOPWORDS.contains(&w.as_str())).then_some(w)
    })
}

/// An in-memory BM25 index over passages.
#[derive(Debug, Clone)]
pub struct Bm25 {
    passages: Vec<Passage>,
    /// term → (passage index, term frequency)
    postings: HashMap<String, Vec<(u32, u32)>>,
    lengths: Vec<u32>,
    average_length: f64,
}

impl Bm25 {
    const K1: f64 = 1.2;
    const B: f64 = 0.75;

    pub fn new(passages: Vec<Passage>) -> Bm25 {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lengths = Vec::with_capacity(passages.len());
        for (i, p) in passages.iter().enumerate() {
            let mut counts: HashMap<String, u32> = HashMap::new();
            let mut len = 0u32;
            for t in terms(&p.text) {
                *counts.entry(t).or_default() += 1;
                len += 1;
            }
            lengths.push(len);
            for (t, c) in counts {
                postings.entry(t).or_default().push((i as u32, c));
            }
        }
        let average_length = lengths.iter().map(|&l| l as f64).sum::<f64>() / lengths.len().max(1) as f64;
        Bm25 { passages, postings, lengths, average_length }
    }

    pub fn passages(&self) -> &[Passage] {
        &self.passages
    }

    /// The `k` best passages for `query`, best first, with their scores; ties keep document
    /// order. Passages sharing no term with the query are never returned.
    pub fn search(&self, query: &str, k: usize) -> Vec<(f64, &Passage)> {
        let n = self.passages.len() as f64;
        let mut scores: HashMap<u32, f64> = HashMap::new();
        let mut seen = Vec::new();
        for t in terms(query) {
            if seen.contains(&t) {
                continue;
            }
            let Some(list) = self.postings.get(&t) else {
                seen.push(t);
                continue;
            };
            let df = list.len() as f64;
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(i, tf) in list {
                let tf = tf as f64;
                let norm = 1.0 - Self::B + Self::B * self.lengths[i as usize] as f64 / self.average_length.max(1e-9);
                *scores.entry(i).or_default() += idf * tf * (Self::K1 + 1.0) / (tf + Self::K1 * norm);
            }
            seen.push(t);
        }
        let mut ranked: Vec<(u32, f64)> = scores.into_iter().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.into_iter().take(k).map(|(i, s)| (s, &self.passages[i as usize])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, text: &str) -> Document {
        Document { path: path.into(), text: text.into() }
    }

    #[test]
    fn passages_are_whole_lines_with_their_numbers() {
        let docs = [doc("a.txt", "one\ntwo\nthree\nfour"), doc("b.txt", "x".repeat(25).as_str())];
        let p = passages(&docs, 10);
        let got: Vec<_> = p.iter().map(|p| (p.path.as_str(), p.line_start, p.line_end, p.text.as_str())).collect();
        assert_eq!(
            got,
            [
                ("a.txt", 1, 2, "one\ntwo"),
                ("a.txt", 3, 4, "three\nfour"),
                ("b.txt", 1, 1, "xxxxxxxxxx"),
                ("b.txt", 1, 1, "xxxxxxxxxx"),
                ("b.txt", 1, 1, "xxxxx"),
            ]
        );
    }

    #[test]
    fn bm25_ranks_the_passage_with_the_rare_terms_first() {
        let docs = [
            doc("lease.txt", "The tenant pays rent monthly.\nEither party may terminate with 60 days notice."),
            doc("nda.txt", "The recipient keeps information confidential.\nThe term is two years."),
            doc("misc.txt", "The the the rent rent."),
        ];
        let index = Bm25::new(passages(&docs, 60));
        let hits = index.search("How many days notice to terminate?", 3);
        assert_eq!(hits[0].1.path, "lease.txt");
        assert_eq!((hits[0].1.line_start, hits[0].1.line_end), (2, 2));
        assert!(index.search("zebra", 3).is_empty());
        assert!(index.search("the of", 3).is_empty(), "stopwords alone match nothing");
    }
}
