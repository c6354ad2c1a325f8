//! Writes the golden version-1 fixtures in `shared/fixtures/`.
//!
//! Run once when a schema version is introduced, never to make a failing test pass: the
//! fixtures exist to catch accidental format drift.
use shared::{encode, samples};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    std::fs::write(
        format!("{dir}/v1_typical.msgpack"),
        encode(&samples::typical_envelope())?,
    )?;
    std::fs::write(
        format!("{dir}/v1_error.msgpack"),
        encode(&samples::error_envelope())?,
    )?;
    println!("wrote fixtures to {dir}");
    Ok(())
}
