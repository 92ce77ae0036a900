//! Criterion micro-benchmarks: the frame codec per slice of 1000 ~100 B CSV
//! records (the bench crate's model of the store's codec, the same work
//! `limit` measures), and booster-store's own append + read path.
//!
//! The dispatcher's heap is benchmarked in `ready_queue.rs`.

use std::hint::black_box;

use booster_bench::codec::{self, Codec};
use booster_bench::records;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

fn codec_per_slice(c: &mut Criterion) {
    let slice = records::records(0, 1000);
    let raw = codec::encode_records(&slice);
    let mut group = c.benchmark_group("codec_slice_1000");
    group.throughput(Throughput::Elements(slice.len() as u64));
    for (name, key, level) in [
        ("zstd1+aes", Some([7u8; 32]), Some(1)),
        ("plain", None, None),
    ] {
        let mut codec = Codec::new(key, level);
        let frame = codec.seal(0, 1000, &raw);
        group.bench_function(format!("seal/{name}"), |b| {
            b.iter(|| black_box(codec.seal(1, 1000, black_box(&raw))))
        });
        group.bench_function(format!("open/{name}"), |b| {
            b.iter(|| black_box(codec.open(black_box(&frame)).unwrap()))
        });
        group.bench_function(format!("round_trip/{name}"), |b| {
            b.iter(|| black_box(codec::round_trip(&mut codec, 2, black_box(&slice))))
        });
    }
    group.finish();
}

/// Store append (group commit, fdatasync) and read of one slice of 1000.
fn store_append_read(c: &mut Criterion) {
    use booster_store::{Batch, MasterKey, SliceKey, Store, StoreOptions};
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = StoreOptions {
        master_key: Some(MasterKey([7u8; 32])),
        ..StoreOptions::default()
    };
    let Ok((store, _)) =
        std::panic::catch_unwind(|| Store::open(dir.path(), opts)).map(|r| r.unwrap())
    else {
        eprintln!("booster-store is not implemented yet: skipping the store benches");
        return;
    };
    let slice = records::records(0, 1000);
    let mut group = c.benchmark_group("store_slice_1000");
    // Each append waits for an fdatasync (milliseconds): few samples.
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(3));
    group.throughput(Throughput::Elements(slice.len() as u64));
    let mut seq = 0u64;
    group.bench_function("append_durable", |b| {
        b.iter_batched(
            || {
                seq += 1;
                SliceKey {
                    owner: 1,
                    stream: 0,
                    seq,
                }
            },
            |key| store.append(Batch::new().slice(key, &slice)).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let key = SliceKey {
        owner: 1,
        stream: 0,
        seq: 1,
    };
    group.bench_function("read_slice", |b| {
        b.iter(|| black_box(store.read_slice(&key).unwrap().unwrap()))
    });
    group.finish();
}

criterion_group!(benches, codec_per_slice, store_append_read);
criterion_main!(benches);
