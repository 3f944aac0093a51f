//! quarry-index's integration tests: one binary, a module per area (ripgrep's layout). They
//! read the real files of `../shared/corpora/documents` and run the confined worker binary of
//! this crate (`quarry-extract-worker`); PDFium comes from `scripts/install-deps.sh`. The
//! history's tests (`history`) use a catalog database in a temporary folder.

mod collection;
mod common;
mod corpus;
mod folder;
mod formats;
mod grep;
mod history;
mod hostile;
mod worker;
