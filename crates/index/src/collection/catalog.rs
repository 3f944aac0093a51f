//! The catalog: what Quarry knows about every collection and every file in it, in SQLite.
//!
//! One database for the whole library (`<data dir>/catalog.sqlite`), in WAL mode so readers
//! (`quarry index status`, the window) never wait for an update. The schema is versioned with
//! `PRAGMA user_version` and grows by appending to [`MIGRATIONS`]; a database newer than this
//! program is refused rather than guessed at.
//!
//! - `collections`: a dropped folder, by name and root. The history's `runs` reference
//!   `collections.id`, which is why ids come from `AUTOINCREMENT` and are never reused: a
//!   conversation must not drift to another folder after a collection is removed and a new one
//!   added.
//! - `files`: one row per path the walk found, with what was read (size, mtime, sha256, format,
//!   pages, chunks, the layout), its `status` (`pending`, `indexed` or `failed` with a
//!   `reason`) and the `generation` of the batch whose tantivy commit holds its chunks.
//! - `batches` and `batch_files`: the indexing batches. A batch's file rows are written here,
//!   `open`, *before* tantivy commits it, and applied to `files` only *after* (the protocol in
//!   [`super`]); `batch_files` is emptied once a batch is applied, `batches` stays as history.
//! - `runs`, `run_events` and `runs_fts` (version 2): the questions asked, their answers and
//!   every event of their runs, and a full-text index over question and answer; read and
//!   written through [`crate::History`].

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};

use crate::{Error, Result};

/// The schema, one migration per version: `MIGRATIONS[i]` takes `user_version` i to i + 1.
const MIGRATIONS: &[&str] = &[
    // 1: collections, files, batches.
    "CREATE TABLE collections (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        root TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        updated_at INTEGER,
        generation INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE files (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'indexed', 'failed')),
        size INTEGER,
        mtime_ns INTEGER,
        read_ns INTEGER,
        hash TEXT,
        format TEXT,
        pages INTEGER NOT NULL DEFAULT 0,
        chunks INTEGER NOT NULL DEFAULT 0,
        text_bytes INTEGER NOT NULL DEFAULT 0,
        text_hash TEXT,
        layout TEXT,
        reason TEXT,
        generation INTEGER NOT NULL DEFAULT 0,
        UNIQUE (collection_id, path)
    );
    CREATE TABLE batches (
        collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
        generation INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'committed')),
        files INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        opened_at INTEGER NOT NULL,
        committed_at INTEGER,
        PRIMARY KEY (collection_id, generation)
    );
    CREATE TABLE batch_files (
        collection_id INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        file_id INTEGER NOT NULL,
        removed INTEGER NOT NULL,
        status TEXT,
        size INTEGER,
        mtime_ns INTEGER,
        read_ns INTEGER,
        hash TEXT,
        format TEXT,
        pages INTEGER NOT NULL DEFAULT 0,
        chunks INTEGER NOT NULL DEFAULT 0,
        text_bytes INTEGER NOT NULL DEFAULT 0,
        text_hash TEXT,
        layout TEXT,
        reason TEXT,
        PRIMARY KEY (collection_id, generation, file_id),
        FOREIGN KEY (collection_id, generation) REFERENCES batches(collection_id, generation) ON DELETE CASCADE
    );",
    // 2: the history of questions (crate::history). A run keeps its collection's name and
    // folder as text beside the id, and the id is set to NULL when the collection is removed:
    // the question and its answer outlive the index they were asked of.
    "CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        collection_id INTEGER REFERENCES collections(id) ON DELETE SET NULL,
        collection TEXT,
        folder TEXT NOT NULL,
        question TEXT NOT NULL,
        mode TEXT NOT NULL,
        models TEXT NOT NULL DEFAULT '{}',
        started_ms INTEGER NOT NULL,
        finished_ms INTEGER,
        status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'cancelled', 'interrupted')),
        answer TEXT,
        citations TEXT NOT NULL DEFAULT '[]',
        stats TEXT NOT NULL DEFAULT '{}',
        pid INTEGER,
        pid_start INTEGER,
        error TEXT
    );
    CREATE INDEX runs_started ON runs (started_ms DESC);
    CREATE TABLE run_events (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    CREATE VIRTUAL TABLE runs_fts USING fts5(
        question, answer, content = 'runs', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER runs_fts_insert AFTER INSERT ON runs BEGIN
        INSERT INTO runs_fts (rowid, question, answer) VALUES (new.id, new.question, new.answer);
    END;
    CREATE TRIGGER runs_fts_delete AFTER DELETE ON runs BEGIN
        INSERT INTO runs_fts (runs_fts, rowid, question, answer) VALUES ('delete', old.id, old.question, old.answer);
    END;
    CREATE TRIGGER runs_fts_update AFTER UPDATE OF question, answer ON runs BEGIN
        INSERT INTO runs_fts (runs_fts, rowid, question, answer) VALUES ('delete', old.id, old.question, old.answer);
        INSERT INTO runs_fts (rowid, question, answer) VALUES (new.id, new.question, new.answer);
    END;",
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A collection's row.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CollectionRow {
    pub id: i64,
    pub name: String,
    pub root: PathBuf,
    /// Unix seconds.
    pub created_at: i64,
    /// When the last update finished (unix seconds), `None` before the first.
    pub updated_at: Option<i64>,
    /// The last batch applied to `files`.
    pub generation: u64,
}

/// Whether a file's text is in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Found by a walk, not read yet (or its last batch never committed).
    Pending,
    Indexed,
    /// Read, and gave no text: `reason` says why.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Indexed => "indexed",
            Status::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "indexed" => Status::Indexed,
            "failed" => Status::Failed,
            _ => Status::Pending,
        }
    }
}

/// A file's row: what was read and what the index holds of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileRow {
    pub id: i64,
    /// Relative to the collection's root, `/`-separated.
    pub path: String,
    pub status: Status,
    pub size: Option<u64>,
    pub mtime_ns: Option<i64>,
    /// When the file was stat'd before it was read (for the racy-mtime rule).
    pub read_ns: Option<i64>,
    /// sha256 of the bytes read.
    pub hash: Option<String>,
    pub format: Option<String>,
    pub pages: u64,
    pub chunks: u64,
    pub text_bytes: u64,
    /// sha256 of the extracted text: what the index's chunks must concatenate to.
    pub text_hash: Option<String>,
    /// The [`crate::Layout`] as JSON (pages and their lines).
    #[serde(skip)]
    pub layout: Option<String>,
    pub reason: Option<String>,
    pub generation: u64,
}

impl FileRow {
    /// Its [`crate::Layout`], read back from the stored JSON.
    pub fn parsed_layout(&self) -> Option<crate::Layout> {
        parse_layout(self.layout.as_deref())
    }
}

/// A stored layout; `None` for none, or for JSON that no longer parses (the file then reads as
/// plain text, one page, rather than failing).
fn parse_layout(json: Option<&str>) -> Option<crate::Layout> {
    json.and_then(|l| serde_json::from_str(l).ok())
}

/// What a batch changes in one file's row, written before the tantivy commit.
#[derive(Debug, Clone)]
pub enum Change {
    /// The file was read: its new row.
    Read(Box<FileRow>),
    /// The file left the folder.
    Removed { id: i64 },
}

impl Change {
    pub fn file_id(&self) -> i64 {
        match self {
            Change::Read(r) => r.id,
            Change::Removed { id } => *id,
        }
    }
}

/// The catalog database.
pub struct Catalog {
    pub(crate) conn: Connection,
    path: PathBuf,
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

const FILE_COLUMNS: &str =
    "id, path, status, size, mtime_ns, read_ns, hash, format, pages, chunks, text_bytes, text_hash, layout, reason, generation";

fn file_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRow> {
    Ok(FileRow {
        id: r.get(0)?,
        path: r.get(1)?,
        status: Status::parse(&r.get::<_, String>(2)?),
        size: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        mtime_ns: r.get(4)?,
        read_ns: r.get(5)?,
        hash: r.get(6)?,
        format: r.get(7)?,
        pages: r.get::<_, i64>(8)? as u64,
        chunks: r.get::<_, i64>(9)? as u64,
        text_bytes: r.get::<_, i64>(10)? as u64,
        text_hash: r.get(11)?,
        layout: r.get(12)?,
        reason: r.get(13)?,
        generation: r.get::<_, i64>(14)? as u64,
    })
}

fn collection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CollectionRow> {
    Ok(CollectionRow {
        id: r.get(0)?,
        name: r.get(1)?,
        root: PathBuf::from(r.get::<_, String>(2)?),
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
        generation: r.get::<_, i64>(5)? as u64,
    })
}

impl Catalog {
    /// Opens (creating and migrating) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.into(), source })?;
        }
        let conn = Connection::open(path).map_err(|e| catalog_error(path, e))?;
        let mut catalog = Catalog { conn, path: path.into() };
        catalog.configure()?;
        catalog.migrate()?;
        Ok(catalog)
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> Error {
        catalog_error(&self.path, e)
    }

    fn configure(&self) -> Result<()> {
        // WAL: readers never block the writer. NORMAL: a commit survives the process being
        // killed (only power loss can undo the last ones, sqlite.org/pragma.html#pragma_synchronous);
        // the one transaction that must survive power loss too, a batch opening, asks for FULL.
        self.conn
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))?;
        self.conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let version: i64 = self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Catalog {
                path: self.path.clone(),
                message: format!(
                    "its schema is version {version}, newer than this Quarry's {SCHEMA_VERSION}; use a newer Quarry, or set QUARRY_DATA_DIR to another folder"
                ),
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| catalog_error(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| catalog_error(&self.path, e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(|e| catalog_error(&self.path, e))?;
            tx.commit().map_err(|e| catalog_error(&self.path, e))?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn collections(&self) -> Result<Vec<CollectionRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, name, root, created_at, updated_at, generation FROM collections ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([], collection_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    pub fn collection(&self, name: &str) -> Result<Option<CollectionRow>> {
        self.conn
            .query_row(
                "SELECT id, name, root, created_at, updated_at, generation FROM collections WHERE name = ?1",
                [name],
                collection_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn collection_at(&self, root: &Path) -> Result<Option<CollectionRow>> {
        self.conn
            .query_row(
                "SELECT id, name, root, created_at, updated_at, generation FROM collections WHERE root = ?1",
                [root.to_string_lossy()],
                collection_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    pub fn insert_collection(&self, name: &str, root: &Path) -> Result<CollectionRow> {
        self.conn
            .execute(
                "INSERT INTO collections (name, root, created_at) VALUES (?1, ?2, ?3)",
                params![name, root.to_string_lossy(), now_s()],
            )
            .map_err(|e| self.err(e))?;
        self.collection(name)?.ok_or_else(|| Error::Catalog {
            path: self.path.clone(),
            message: format!("the collection {name} was added but cannot be read back"),
        })
    }

    pub fn remove_collection(&self, id: i64) -> Result<()> {
        self.conn.execute("DELETE FROM collections WHERE id = ?1", [id]).map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn set_updated(&self, id: i64) -> Result<()> {
        self.conn
            .execute("UPDATE collections SET updated_at = ?2 WHERE id = ?1", params![id, now_s()])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Every file row of a collection, by path.
    pub fn files(&self, collection: i64) -> Result<Vec<FileRow>> {
        let mut st = self
            .conn
            .prepare_cached(&format!("SELECT {FILE_COLUMNS} FROM files WHERE collection_id = ?1 ORDER BY path"))
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([collection], file_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// (id, path) of a collection's indexed files, without the rest of their rows: what `grep`
    /// needs of the catalog before it knows which files match.
    pub fn indexed_paths(&self, collection: i64) -> Result<Vec<(i64, String)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT id, path FROM files WHERE collection_id = ?1 AND status = 'indexed'")
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([collection], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// A file's [`crate::Layout`] (see [`FileRow::parsed_layout`]).
    pub fn layout(&self, file: i64) -> Result<Option<crate::Layout>> {
        self.conn
            .query_row("SELECT layout FROM files WHERE id = ?1", [file], |r| r.get::<_, Option<String>>(0))
            .optional()
            .map(|json| parse_layout(json.flatten().as_deref()))
            .map_err(|e| self.err(e))
    }

    pub fn file(&self, collection: i64, path: &str) -> Result<Option<FileRow>> {
        self.conn
            .query_row(
                &format!("SELECT {FILE_COLUMNS} FROM files WHERE collection_id = ?1 AND path = ?2"),
                params![collection, path],
                file_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Adds `paths` (new to the walk) as `pending` rows, in one transaction; returns their ids.
    /// This claims nothing about the index: a pending file has no chunks.
    pub fn add_pending(&mut self, collection: i64, paths: &[String]) -> Result<Vec<i64>> {
        let tx = self.conn.transaction().map_err(|e| catalog_error(&self.path, e))?;
        let mut ids = Vec::with_capacity(paths.len());
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO files (collection_id, path, status) VALUES (?1, ?2, 'pending')
                     ON CONFLICT (collection_id, path) DO UPDATE SET path = excluded.path RETURNING id",
                )
                .map_err(|e| catalog_error(&self.path, e))?;
            for p in paths {
                ids.push(st.query_row(params![collection, p], |r| r.get(0)).map_err(|e| catalog_error(&self.path, e))?);
            }
        }
        tx.commit().map_err(|e| catalog_error(&self.path, e))?;
        Ok(ids)
    }

    /// Records that files whose content was found unchanged (same sha256) were looked at again:
    /// their new stat, so the next walk trusts it. Their chunks are untouched.
    pub fn refresh_stat(&mut self, rows: &[(i64, u64, i64, i64)]) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| catalog_error(&self.path, e))?;
        {
            let mut st = tx
                .prepare_cached("UPDATE files SET size = ?2, mtime_ns = ?3, read_ns = ?4 WHERE id = ?1")
                .map_err(|e| catalog_error(&self.path, e))?;
            for (id, size, mtime, read) in rows {
                st.execute(params![id, *size as i64, mtime, read]).map_err(|e| catalog_error(&self.path, e))?;
            }
        }
        tx.commit().map_err(|e| catalog_error(&self.path, e))
    }

    /// Step 1 of a batch: records batch `generation` as `open` with every row it will write,
    /// durably (synchronous = FULL), before tantivy commits its documents.
    pub fn open_batch(&mut self, collection: i64, generation: u64, changes: &[Change], bytes: u64) -> Result<()> {
        self.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| self.err(e))?;
        let result = (|| -> rusqlite::Result<()> {
            let tx = self.conn.transaction()?;
            tx.execute(
                "INSERT INTO batches (collection_id, generation, state, files, bytes, opened_at) VALUES (?1, ?2, 'open', ?3, ?4, ?5)",
                params![collection, generation as i64, changes.len() as i64, bytes as i64, now_s()],
            )?;
            {
                let mut st = tx.prepare_cached(
                    "INSERT INTO batch_files (collection_id, generation, file_id, removed, status, size, mtime_ns, read_ns,
                       hash, format, pages, chunks, text_bytes, text_hash, layout, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )?;
                for c in changes {
                    match c {
                        Change::Removed { id } => {
                            st.execute(params![
                                collection,
                                generation as i64,
                                id,
                                1,
                                None::<String>,
                                None::<i64>,
                                None::<i64>,
                                None::<i64>,
                                None::<String>,
                                None::<String>,
                                0,
                                0,
                                0,
                                None::<String>,
                                None::<String>,
                                None::<String>
                            ])?;
                        }
                        Change::Read(f) => {
                            st.execute(params![
                                collection,
                                generation as i64,
                                f.id,
                                0,
                                f.status.as_str(),
                                f.size.map(|s| s as i64),
                                f.mtime_ns,
                                f.read_ns,
                                f.hash,
                                f.format,
                                f.pages as i64,
                                f.chunks as i64,
                                f.text_bytes as i64,
                                f.text_hash,
                                f.layout,
                                f.reason
                            ])?;
                        }
                    }
                }
            }
            tx.commit()
        })();
        let restore = self.conn.pragma_update(None, "synchronous", "NORMAL");
        result.map_err(|e| self.err(e))?;
        restore.map_err(|e| self.err(e))
    }

    /// Step 4 of a batch (and the roll-forward of recovery): applies batch `generation`'s rows
    /// to `files`, marks it committed and empties its `batch_files`.
    pub fn apply_batch(&mut self, collection: i64, generation: u64) -> Result<()> {
        let g = generation as i64;
        let path = self.path.clone();
        let tx = self.conn.transaction().map_err(|e| catalog_error(&path, e))?;
        (|| -> rusqlite::Result<()> {
            tx.execute(
                "DELETE FROM files WHERE id IN (SELECT file_id FROM batch_files WHERE collection_id = ?1 AND generation = ?2 AND removed = 1)",
                params![collection, g],
            )?;
            tx.execute(
                "UPDATE files SET (status, size, mtime_ns, read_ns, hash, format, pages, chunks, text_bytes, text_hash, layout, reason, generation) =
                   (SELECT b.status, b.size, b.mtime_ns, b.read_ns, b.hash, b.format, b.pages, b.chunks, b.text_bytes, b.text_hash, b.layout, b.reason, b.generation
                    FROM batch_files b WHERE b.collection_id = ?1 AND b.generation = ?2 AND b.file_id = files.id)
                 WHERE id IN (SELECT file_id FROM batch_files WHERE collection_id = ?1 AND generation = ?2 AND removed = 0)",
                params![collection, g],
            )?;
            tx.execute(
                "DELETE FROM batch_files WHERE collection_id = ?1 AND generation = ?2",
                params![collection, g],
            )?;
            tx.execute(
                "UPDATE batches SET state = 'committed', committed_at = ?3 WHERE collection_id = ?1 AND generation = ?2",
                params![collection, g, now_s()],
            )?;
            tx.execute(
                "UPDATE collections SET generation = max(generation, ?2) WHERE id = ?1",
                params![collection, g],
            )?;
            Ok(())
        })()
        .map_err(|e| catalog_error(&path, e))?;
        tx.commit().map_err(|e| catalog_error(&path, e))
    }

    /// Drops batch `generation`, which tantivy never committed: the files keep their old rows,
    /// and the next walk finds them changed again.
    pub fn drop_batch(&mut self, collection: i64, generation: u64) -> Result<()> {
        self.conn
            .execute(
                "DELETE FROM batches WHERE collection_id = ?1 AND generation = ?2 AND state = 'open'",
                params![collection, generation as i64],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Batches written but not yet applied (after a crash), oldest first.
    pub fn open_batches(&self, collection: i64) -> Result<Vec<u64>> {
        let mut st = self
            .conn
            .prepare("SELECT generation FROM batches WHERE collection_id = ?1 AND state = 'open' ORDER BY generation")
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([collection], |r| r.get::<_, i64>(0)).map_err(|e| self.err(e))?;
        rows.map(|r| r.map(|g| g as u64)).collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    /// Files whose rows claim a batch newer than the index's last commit (the index lost a
    /// commit to a power failure): they become pending, to be read again.
    pub fn forget_newer_than(&mut self, collection: i64, generation: u64) -> Result<usize> {
        let g = generation as i64;
        let n = self
            .conn
            .execute(
                "UPDATE files SET status = 'pending', generation = 0, chunks = 0, size = NULL, mtime_ns = NULL, hash = NULL
                 WHERE collection_id = ?1 AND generation > ?2",
                params![collection, g],
            )
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("DELETE FROM batches WHERE collection_id = ?1 AND generation > ?2", params![collection, g])
            .map_err(|e| self.err(e))?;
        self.conn
            .execute("UPDATE collections SET generation = min(generation, ?2) WHERE id = ?1", params![collection, g])
            .map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// The newest generation this collection's batches used.
    pub fn last_generation(&self, collection: i64) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT max(coalesce((SELECT max(generation) FROM batches WHERE collection_id = ?1), 0),
                            (SELECT generation FROM collections WHERE id = ?1))",
                [collection],
                |r| r.get::<_, Option<i64>>(0),
            )
            .map(|g| g.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// (batches committed, last commit's unix time) of a collection.
    pub fn batch_history(&self, collection: i64) -> Result<(u64, Option<i64>)> {
        self.conn
            .query_row(
                "SELECT count(*), max(committed_at) FROM batches WHERE collection_id = ?1 AND state = 'committed'",
                [collection],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .map_err(|e| self.err(e))
    }
}

fn catalog_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::Catalog { path: path.into(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(id: i64, path: &str) -> FileRow {
        FileRow {
            id,
            path: path.into(),
            status: Status::Indexed,
            size: Some(3),
            mtime_ns: Some(1),
            read_ns: Some(2),
            hash: Some("h".into()),
            format: Some("text".into()),
            pages: 1,
            chunks: 1,
            text_bytes: 3,
            text_hash: Some("t".into()),
            layout: None,
            reason: None,
            generation: 0,
        }
    }

    #[test]
    fn a_batch_reaches_the_files_only_when_applied() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let col = c.insert_collection("docs", Path::new("/docs")).unwrap();
        let ids = c.add_pending(col.id, &["a.txt".into(), "b.txt".into()]).unwrap();
        c.open_batch(col.id, 1, &[Change::Read(Box::new(read(ids[0], "a.txt"))), Change::Removed { id: ids[1] }], 3)
            .unwrap();
        let before = c.files(col.id).unwrap();
        assert!(before.iter().all(|f| f.status == Status::Pending && f.generation == 0));
        assert_eq!(c.open_batches(col.id).unwrap(), [1]);
        c.apply_batch(col.id, 1).unwrap();
        let after = c.files(col.id).unwrap();
        assert_eq!(after.len(), 1, "the removed file's row is gone");
        assert_eq!((after[0].status, after[0].generation, after[0].path.as_str()), (Status::Indexed, 1, "a.txt"));
        assert!(c.open_batches(col.id).unwrap().is_empty());
        assert_eq!(c.last_generation(col.id).unwrap(), 1);
    }

    #[test]
    fn a_dropped_batch_leaves_the_files_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let col = c.insert_collection("docs", Path::new("/docs")).unwrap();
        let ids = c.add_pending(col.id, &["a.txt".into()]).unwrap();
        c.open_batch(col.id, 1, &[Change::Read(Box::new(read(ids[0], "a.txt")))], 3).unwrap();
        c.drop_batch(col.id, 1).unwrap();
        assert_eq!(c.files(col.id).unwrap()[0].status, Status::Pending);
        assert!(c.open_batches(col.id).unwrap().is_empty());
    }

    #[test]
    fn reopening_keeps_the_schema_and_a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        {
            let c = Catalog::open(&path).unwrap();
            c.insert_collection("docs", Path::new("/docs")).unwrap();
        }
        let c = Catalog::open(&path).unwrap();
        assert_eq!(c.collections().unwrap().len(), 1);
        c.conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(c);
        let err = Catalog::open(&path).err().unwrap().to_string();
        assert!(err.contains("newer than this Quarry's") && err.contains("catalog.sqlite"), "{err}");
    }

    /// A library written by the version before history (schema 1): opening it adds the
    /// history's tables and keeps every collection, file and batch as it was.
    #[test]
    fn a_version_1_catalog_migrates_to_version_2_and_keeps_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO collections (name, root, created_at, updated_at, generation) VALUES ('docs', '/docs', 10, 20, 1);
                 INSERT INTO files (collection_id, path, status, size, hash, pages, chunks, text_bytes, generation)
                   VALUES (1, 'a.txt', 'indexed', 3, 'h', 1, 1, 3, 1), (1, 'b.pdf', 'failed', 9, 'g', 0, 0, 0, 1);
                 UPDATE files SET reason = 'encrypted' WHERE path = 'b.pdf';
                 INSERT INTO batches (collection_id, generation, state, files, bytes, opened_at, committed_at)
                   VALUES (1, 1, 'committed', 2, 12, 15, 16);",
            )
            .unwrap();
        }
        let c = Catalog::open(&path).unwrap();
        let version: i64 = c.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!((version, SCHEMA_VERSION), (2, 2));
        let col = c.collection("docs").unwrap().unwrap();
        assert_eq!((col.id, col.created_at, col.updated_at, col.generation), (1, 10, Some(20), 1));
        let files = c.files(col.id).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(
            (files[0].path.as_str(), files[0].status, files[0].hash.as_deref()),
            ("a.txt", Status::Indexed, Some("h"))
        );
        assert_eq!((files[1].status, files[1].reason.as_deref()), (Status::Failed, Some("encrypted")));
        assert_eq!(c.batch_history(col.id).unwrap(), (1, Some(16)));
        // The new tables work, the full-text index follows them, and a run outlives the
        // collection it was asked of.
        c.conn
            .execute_batch(
                "INSERT INTO runs (collection_id, collection, folder, question, mode, started_ms, status, answer)
                   VALUES (1, 'docs', '/docs', 'Which lease renews?', 'rlm', 1, 'done', 'The Acme lease.');
                 INSERT INTO run_events (run_id, seq, event) VALUES (1, 0, '{}');",
            )
            .unwrap();
        let hit: i64 =
            c.conn.query_row("SELECT rowid FROM runs_fts WHERE runs_fts MATCH 'acme'", [], |r| r.get(0)).unwrap();
        assert_eq!(hit, 1);
        c.remove_collection(col.id).unwrap();
        let (collection_id, name): (Option<i64>, String) =
            c.conn.query_row("SELECT collection_id, collection FROM runs", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        assert_eq!((collection_id, name.as_str()), (None, "docs"));
        drop(c);
        // Opening again migrates nothing twice.
        let c = Catalog::open(&path).unwrap();
        let runs: i64 = c.conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0)).unwrap();
        assert_eq!(runs, 1);
    }

    #[test]
    fn removed_collection_ids_are_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("catalog.sqlite")).unwrap();
        let a = c.insert_collection("a", Path::new("/a")).unwrap();
        c.remove_collection(a.id).unwrap();
        let b = c.insert_collection("b", Path::new("/b")).unwrap();
        assert!(b.id > a.id);
    }
}
