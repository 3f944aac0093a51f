//! Describing a folder to the root model without showing its contents: the model should learn
//! the *shape* of the data (how many files, how big, what kinds, where) and then decide in code
//! what to read — that is the whole point of the RLM method.

use std::collections::BTreeMap;

use quarry_index::Folder;

/// The shape of a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderSummary {
    pub files: usize,
    pub total_chars: usize,
    /// `total_chars / 4`: a tokenizer-free estimate, good enough to choose a chunking strategy.
    pub estimated_tokens: usize,
    /// Extension (`"(none)"` when there is none) and how many files have it, most common first.
    pub types: Vec<(String, usize)>,
    /// `(path, chars)` in path order.
    pub sizes: Vec<(String, usize)>,
}

impl FolderSummary {
    pub fn of(folder: &Folder) -> FolderSummary {
        let docs = folder.documents();
        let sizes: Vec<(String, usize)> = docs.iter().map(|d| (d.path.clone(), d.text.chars().count())).collect();
        let total_chars = sizes.iter().map(|(_, n)| n).sum();
        let mut hist: BTreeMap<String, usize> = BTreeMap::new();
        for (path, _) in &sizes {
            *hist.entry(extension(path)).or_default() += 1;
        }
        let mut types: Vec<_> = hist.into_iter().collect();
        types.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        FolderSummary { files: sizes.len(), total_chars, estimated_tokens: total_chars / 4, types, sizes }
    }

    /// A few lines for the prompt; the file list stops after `max_files` entries with a note
    /// saying how many are left, so a 50 000-file folder does not fill the window.
    pub fn describe(&self, max_files: usize) -> String {
        let mut s = format!(
            "The folder has {} files, {} characters in total (about {} tokens).\n",
            self.files, self.total_chars, self.estimated_tokens
        );
        let types: Vec<String> = self.types.iter().map(|(t, n)| format!("{t}: {n}")).collect();
        s.push_str(&format!("File types: {}.\n", types.join(", ")));
        s.push_str("Files (characters):\n");
        for (path, chars) in self.sizes.iter().take(max_files) {
            s.push_str(&format!("  {path} ({chars})\n"));
        }
        if self.sizes.len() > max_files {
            s.push_str(&format!("  ... and {} more files (list them with files())\n", self.sizes.len() - max_files));
        }
        if self.has_python() {
            s.push_str(PYTHON_HELPERS);
        }
        s
    }

    /// Some files are Python source, so the REPL's `symbols()` and `imports()` apply.
    pub fn has_python(&self) -> bool {
        self.types.iter().any(|(t, _)| PYTHON.contains(&t.as_str()))
    }
}

const PYTHON: &[&str] = &[".py", ".pyi", ".pyw"];

/// Told only when there is Python source: helpers a folder of contracts does not need are noise
/// to a small model. The REPL's `symbols()` and `imports()` parse the files, so a question about
/// definitions gets an exact answer where a grep counts every mention.
const PYTHON_HELPERS: &str = "\
For Python source the REPL also has (use them, not grep, for questions about definitions, classes, methods and imports):
- `symbols(name=None, kind=None, parent=None, base=None)`: every class, function and method, parsed: dicts with \"path\", \"line\", \"kind\" (\"class\", \"function\" or \"method\"), \"name\", \"parent\" (enclosing class or function), \"bases\" (a class's base classes as written). Filters: `name` is a regex matched at the start of the name, `parent` a class or function name, `base` a base class name. Example: `print(len(symbols(kind=\"method\", parent=\"Parser\")))`.
- `imports(module=None)`: every import statement: dicts with \"path\", \"line\", \"module\", \"names\"; with `module`, only imports of it or its submodules.
";

fn extension(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => format!(".{}", ext.to_ascii_lowercase()),
        _ => "(none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(files: &[(&str, &str)]) -> (tempfile::TempDir, Folder) {
        let dir = tempfile::tempdir().unwrap();
        for (p, t) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        }
        let f = Folder::load(dir.path()).unwrap();
        (dir, f)
    }

    #[test]
    fn counts_sizes_and_types_without_contents() {
        let (_d, f) = folder(&[("a.md", "secret alpha"), ("b.MD", "xx"), ("sub/c.txt", "ééé"), ("Makefile", "all:")]);
        let s = FolderSummary::of(&f);
        assert_eq!(s.files, 4);
        assert_eq!(s.total_chars, 12 + 2 + 3 + 4);
        assert_eq!(s.estimated_tokens, 21 / 4);
        assert_eq!(s.types[0], (".md".to_string(), 2));
        assert!(s.types.contains(&("(none)".to_string(), 1)));
        let text = s.describe(10);
        assert!(text.contains("4 files, 21 characters"), "{text}");
        assert!(text.contains("  sub/c.txt (3)\n"), "{text}");
        assert!(!text.contains("secret"), "contents never appear: {text}");
        assert!(!text.contains("symbols("), "no code helpers without Python files: {text}");
        let (_d, f) = folder(&[("pkg/a.py", "x = 1")]);
        assert!(FolderSummary::of(&f).describe(10).contains("symbols(name=None, kind=None, parent=None, base=None)"));
    }

    #[test]
    fn long_listings_are_cut_with_a_count() {
        let names: Vec<String> = (0..30).map(|i| format!("f{i:02}.txt")).collect();
        let files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "x")).collect();
        let (_d, f) = folder(&files);
        let text = FolderSummary::of(&f).describe(5);
        assert_eq!(text.matches(".txt (1)").count(), 5);
        assert!(text.contains("... and 25 more files"), "{text}");
    }
}
