//! Integration tests of the whole application: real SQLite files (or PostgreSQL when
//! `TOCSIN_TEST_DATABASE_URL` is set, for the tests that say so), real HTTP on loopback, the
//! real `tocsin` binary where a process matters (kill -9, the CLI).

mod api;
mod cli;
mod cli_views;
mod demo;
mod docs;
mod due_work;
mod durability;
mod edge;
mod heartbeats;
mod ingest;
mod interop;
mod lists;
mod monitor_pause;
mod monitor_results;
mod monitors;
mod notices;
mod oncall;
mod outbox;
mod paging;
mod postgres;
mod rules;
mod runtime;
mod service_deps;
mod shedding;
mod smtp;
mod status_page;
mod storm;
mod support;
mod tls;
