//! The contract of owner analytics: the event names and property keys that the producer's
//! automatic events use and that the consumer's user tables and the dashboard's pages read.
//! One place, so the three agree (docs/owner-analytics.md explains each).

/// [`crate::EventKind::User`]: the user blocked the bot (a private chat's `my_chat_member`
/// going to `kicked`, or a Bot API 403 "bot was blocked by the user").
pub const USER_BLOCKED: &str = "user_blocked";
/// [`crate::EventKind::User`]: the user unblocked the bot (`my_chat_member` back to `member`).
pub const USER_UNBLOCKED: &str = "user_unblocked";
/// [`crate::EventKind::User`]: a text message that is not a command got no reply (no text is
/// stored).
pub const NOT_UNDERSTOOD: &str = "not_understood";

/// [`crate::EventKind::Payment`]: a `pre_checkout_query` (the user is about to pay).
pub const PRE_CHECKOUT: &str = "pre_checkout";
/// [`crate::EventKind::Payment`]: a `successful_payment` message.
pub const PAYMENT: &str = "payment";
/// [`crate::EventKind::Payment`]: a `refunded_payment` message.
pub const REFUND: &str = "refund";

/// Payment property: the amount, a number in the currency's smallest units as Telegram sends
/// it (`total_amount`: Stars for `XTR`, cents for `USD`). The first numeric property of a
/// payment event, so it lands in `double8`.
pub const AMOUNT: &str = "amount";
/// Payment property: the three-letter currency code (`XTR` for Telegram Stars), a column of
/// its own (`blob19`).
pub const CURRENCY: &str = "currency";
/// Update property: the user's language, two lowercase letters from `language_code`.
pub const LANGUAGE: &str = "lang";
/// Update property: `true` when the user has Telegram Premium (absent otherwise).
pub const PREMIUM: &str = "premium";
/// Command property of `/start`: the deep-link campaign (also a column, `blob16`).
pub const SOURCE: &str = "source";
