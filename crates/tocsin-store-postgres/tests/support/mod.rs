//! A database per test: see `tocsin_store_postgres::testing`.

pub use tocsin_store_postgres::testing::*;
