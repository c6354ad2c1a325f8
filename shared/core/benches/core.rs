//! Native micro-benchmarks of the core: encode, decode, data-point mapping, fingerprinting.
//! Run with `cargo bench -p analytics-core`; throughput is reported in events per second.

use analytics_core::datapoint::{to_data_point, PointInput};
use analytics_core::fingerprint::fingerprint;
use analytics_core::{decode, encode, samples};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

fn benches(c: &mut Criterion) {
    let envelope = samples::typical_envelope();
    let events = envelope.events.len() as u64;
    let bytes = encode(&envelope).unwrap();

    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(events));
    group.bench_function("encode_envelope_5_events", |b| {
        b.iter(|| encode(black_box(&envelope)).unwrap())
    });
    group.bench_function("decode_envelope_5_events", |b| {
        b.iter(|| decode(black_box(&bytes)).unwrap())
    });
    group.bench_function("json_encode_envelope_5_events", |b| {
        b.iter(|| serde_json::to_vec(black_box(&envelope)).unwrap())
    });
    group.finish();

    let source = samples::source();
    let mut group = c.benchmark_group("consumer");
    group.throughput(Throughput::Elements(events));
    group.bench_function("data_points_5_events", |b| {
        b.iter(|| {
            for event in &envelope.events {
                black_box(to_data_point(&PointInput {
                    source: &source,
                    event,
                    timestamp_ms: 0,
                    skew_ms: 0,
                }));
            }
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("fingerprint", |b| {
        b.iter(|| {
            fingerprint(
                black_box("telegram_api"),
                black_box("Too Many Requests: retry after 35 (chat -1001234567890)"),
                Some("bot_api:editMessageText"),
            )
        })
    });
    group.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
