//! Criterion micro-benchmarks of the dispatcher's ready queue (the priority
//! heap, `runtime/src/ready.rs`), reached through the runtime's hidden
//! `bench_support` module, at N = 1,000 and 100,000 queued simple jobs over
//! 8 kinds with random priorities:
//! - `push`: filing N fresh jobs into an empty queue (time for all N);
//! - `pop_next`: picking the most urgent leasable job while half the kinds
//!   are at their `max_workers` limit, and taking it out (leased + re-filed);
//!   the job is put back untimed, so the queue stays at N;
//! - `reprioritise_then_pop`: changing a random job's priority, re-filing it,
//!   and picking the next job under the same limits.

use std::hint::black_box;
use std::time::{Duration, Instant};

use booster_runtime::bench_support::{
    refile, set_leased, simple_job, KindGate, KindId, QueuedJob, ReadyQueue,
};
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

const KINDS: [&str; 8] = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
const SIZES: [usize; 2] = [1_000, 100_000];

/// xorshift64: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn jobs(n: usize, rng: &mut Rng) -> Vec<QueuedJob> {
    (0..n)
        .map(|i| {
            let kind = KINDS[i % KINDS.len()];
            simple_job(i as u64 + 1, kind, (rng.next() % 100) as u8)
        })
        .collect()
}

/// Kinds k0..k3 are at their running-job limit: only k4..k7 may start jobs.
fn half_at_limit(_: KindId, kind: &str) -> KindGate {
    KindGate {
        runnable: true,
        may_start: kind.as_bytes()[1] >= b'4',
    }
}

fn filled(n: usize, rng: &mut Rng) -> (ReadyQueue, Vec<QueuedJob>) {
    let mut queue = ReadyQueue::default();
    let mut jobs = jobs(n, rng);
    for job in &mut jobs {
        refile(&mut queue, job);
    }
    (queue, jobs)
}

fn push(c: &mut Criterion) {
    let mut group = c.benchmark_group("ready_queue/push");
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_batched(
                || jobs(n, &mut rng),
                |mut jobs| {
                    let mut queue = ReadyQueue::default();
                    for job in &mut jobs {
                        refile(&mut queue, job);
                    }
                    black_box((queue, jobs))
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn pop_next(c: &mut Criterion) {
    let mut group = c.benchmark_group("ready_queue/pop_next");
    for n in SIZES {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let (mut queue, mut jobs) = filled(n, &mut rng);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let (_, id) = queue.first(half_at_limit).expect("queue is never empty");
                    let job = &mut jobs[id as usize - 1];
                    set_leased(job, true);
                    let leasable = refile(&mut queue, job);
                    total += start.elapsed();
                    assert!(!leasable, "a leased simple job leaves the queue");
                    set_leased(job, false);
                    refile(&mut queue, job);
                }
                total
            })
        });
    }
    group.finish();
}

fn reprioritise_then_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("ready_queue/reprioritise_then_pop");
    for n in SIZES {
        let mut rng = Rng(0xd1b5_4a32_d192_ed03);
        let (mut queue, mut jobs) = filled(n, &mut rng);
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let i = (rng.next() % n as u64) as usize;
                let job = &mut jobs[i];
                job.job.priority = (rng.next() % 100) as u8;
                refile(&mut queue, job);
                black_box(queue.first(half_at_limit))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, push, pop_next, reprioritise_then_pop);
criterion_main!(benches);
