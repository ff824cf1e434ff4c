//! `tocsin`: parses arguments and runs one command. Errors print their whole cause chain once
//! and exit non-zero.

mod cli;

/// The request path allocates many small, short-lived buffers (bodies, JSON values, rows);
/// mimalloc serves them with less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    // TOKIO_WORKER_THREADS, when set, is tokio's to read.
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        runtime.worker_threads(worker_threads(cores));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            if cli::is_broken_pipe(&error) {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime's workers (HTTP, timers, paging, checks) for a machine with `cores`: one fewer
/// than the cores, at least one, because the ingest writer, which commits every event, has a
/// thread of its own and keeps it busy under load. Measured in docs/BENCHMARKS.md.
fn worker_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_runtime_leaves_a_core_to_the_ingest_writer() {
        assert_eq!(super::worker_threads(0), 1);
        assert_eq!(super::worker_threads(1), 1);
        assert_eq!(super::worker_threads(2), 1);
        assert_eq!(super::worker_threads(8), 7);
    }
}
