//! `quarry-models`' integration tests, one binary.

mod fetch;
