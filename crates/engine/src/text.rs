//! Token bytes to text for streaming: whole UTF-8 characters only, and never a tail that may
//! still turn into a stop string, so streamed text always equals the final text.

/// Turns token bytes into text: holds back bytes of an unfinished UTF-8 character and any tail
/// that could still become a stop string, so what the sink sees is exactly the final text.
pub(crate) struct Utf8Stream {
    stop: Vec<String>,
    pending: Vec<u8>,
    pub(crate) text: String,
    emitted: usize,
}

impl Utf8Stream {
    pub(crate) fn new(stop: Vec<String>) -> Self {
        Utf8Stream { stop, pending: Vec::new(), text: String::new(), emitted: 0 }
    }

    /// Returns the text that is now certain, and whether a stop string ended the output.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> (String, bool) {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(s) => s.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Invalid bytes will never complete: replace them rather than stall.
            Err(_) => {
                let s = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                self.text.push_str(&s);
                return self.settle();
            }
        };
        let s = std::str::from_utf8(&self.pending[..valid]).expect("checked above").to_string();
        self.pending.drain(..valid);
        self.text.push_str(&s);
        self.settle()
    }

    fn settle(&mut self) -> (String, bool) {
        let search_from = self.emitted.saturating_sub(self.stop.iter().map(|s| s.len()).max().unwrap_or(0));
        let search_from = floor_char_boundary(&self.text, search_from);
        if let Some(at) = self
            .stop
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text[search_from..].find(s.as_str()).map(|i| i + search_from))
            .min()
        {
            self.text.truncate(at);
            let fresh = self.text[self.emitted.min(at)..].to_string();
            self.emitted = at;
            return (fresh, true);
        }
        // Hold back the longest tail that is a prefix of some stop string.
        let mut safe = self.text.len();
        for s in &self.stop {
            for k in (1..s.len()).rev() {
                if self.text.ends_with(&s[..floor_char_boundary(s, k)]) && k <= self.text.len() {
                    safe = safe.min(self.text.len() - floor_char_boundary(s, k));
                    break;
                }
            }
        }
        let safe = floor_char_boundary(&self.text, safe.max(self.emitted));
        let fresh = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (fresh, false)
    }

    pub(crate) fn flush(&mut self) -> String {
        let fresh = self.text[self.emitted..].to_string();
        self.emitted = self.text.len();
        fresh
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::Utf8Stream;

    fn run(pieces: &[&[u8]], stop: &[&str]) -> (String, String, bool) {
        let mut s = Utf8Stream::new(stop.iter().map(|s| s.to_string()).collect());
        let mut seen = String::new();
        let mut stopped = false;
        for p in pieces {
            let (fresh, st) = s.push(p);
            seen.push_str(&fresh);
            if st {
                stopped = true;
                break;
            }
        }
        if !stopped {
            seen.push_str(&s.flush());
        }
        (seen, s.text, stopped)
    }

    #[test]
    fn split_characters_are_joined_before_they_are_emitted() {
        let euro = "€".as_bytes();
        let (seen, text, _) = run(&[b"a", &euro[..1], &euro[1..], b"b"], &[]);
        assert_eq!(seen, "a€b");
        assert_eq!(text, "a€b");
    }

    #[test]
    fn stop_strings_are_cut_and_never_streamed() {
        let (seen, text, stopped) = run(&[b"answer: 4", b"2\n##", b"#END", b" more"], &["###END"]);
        assert!(stopped);
        assert_eq!(text, "answer: 42\n");
        assert_eq!(seen, text);
        // A partial match that turns out not to be a stop string is released.
        let (seen, text, stopped) = run(&[b"a ##", b"# b"], &["###END"]);
        assert!(!stopped);
        assert_eq!((seen.as_str(), text.as_str()), ("a ### b", "a ### b"));
    }
}
