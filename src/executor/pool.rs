//! The worker pool: one rayon pool sized by `--forks`, never rayon's global
//! pool (which has one thread per core: 2 here, so 16 hosts running
//! `sleep 1` took 9 s on it and 1.2 s on a pool of 16).

use rayon::{ThreadPool, ThreadPoolBuildError, ThreadPoolBuilder};

pub fn build(forks: usize) -> Result<ThreadPool, ThreadPoolBuildError> {
    ThreadPoolBuilder::new()
        .num_threads(forks.max(1))
        .thread_name(|i| format!("herd-worker-{i}"))
        .build()
}
