//! `telegram_policy::update::Update::parse` must never panic; for updates that parse, neither may
//! `Command::parse` on their text (the message's, or a callback query's message's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use telegram_policy::update::{Command, Update};

fuzz_target!(|data: &[u8]| {
    let Ok(update) = Update::parse(data) else {
        return;
    };
    let _ = (update.user_id(), update.chat().map(|c| c.id));
    let p = &update.payload;
    let nested = p.message.as_ref().and_then(|m| m.text.as_deref());
    for text in [p.text.as_deref(), nested, p.data.as_deref()]
        .into_iter()
        .flatten()
    {
        if let Some(cmd) = Command::parse(text) {
            let _ = (cmd.is_for("MyBot"), cmd.is_for("@mybot"), cmd.payload.len());
        }
    }
});
