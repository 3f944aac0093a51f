//! `quarry-engine`'s integration tests, one binary: the engine against the real 0.5B model
//! (`make test` fetches it first).

mod engine;
mod real_model;
mod score;
