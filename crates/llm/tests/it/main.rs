//! `quarry-llm`'s integration tests, one binary.

mod client;
