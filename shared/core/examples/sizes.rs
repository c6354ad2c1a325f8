//! Prints MessagePack vs JSON bytes for the sample events and envelope (used by `make bench`).
use analytics_core::{encode, samples, wire::encode_event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let envelope = samples::typical_envelope();
    let msgpack = encode(&envelope)?.len();
    let json = serde_json::to_vec(&envelope)?.len();
    let events = envelope.events.len();
    let event_mp: usize = envelope
        .events
        .iter()
        .map(|e| encode_event(e).map(|b| b.len()))
        .sum::<Result<usize, _>>()?;
    let event_json: usize = envelope
        .events
        .iter()
        .map(|e| serde_json::to_vec(e).map(|b| b.len()))
        .sum::<Result<usize, _>>()?;
    println!("| payload | MessagePack bytes | JSON bytes | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| mean event ({events} sample events) | {:.1} | {:.1} | {:.1} % |",
        event_mp as f64 / events as f64,
        event_json as f64 / events as f64,
        100.0 * event_mp as f64 / event_json as f64
    );
    println!(
        "| envelope of {events} events | {msgpack} | {json} | {:.1} % |",
        100.0 * msgpack as f64 / json as f64
    );
    Ok(())
}
