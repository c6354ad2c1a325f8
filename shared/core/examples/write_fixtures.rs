//! Writes the golden fixture of the current schema version in `shared/core/fixtures/`.
//!
//! Run once when a schema version is introduced, never to make a failing test pass: the
//! fixtures exist to catch accidental format drift. (The version 1 fixtures were written by
//! the version 1 code and are kept as they are.)
use analytics_core::{encode, samples};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    std::fs::write(
        format!("{dir}/v2_typed.msgpack"),
        encode(&samples::typed_envelope())?,
    )?;
    println!("wrote fixtures to {dir}");
    Ok(())
}
