//! Hostile input against the bot Worker in real local workerd: every malformed or hostile
//! request gets a 4xx (never a 5xx, never a hang), and the Worker keeps serving good requests.

use std::time::Duration;

use e2e_tests::stack::TEST_SECRET;
use e2e_tests::{fixture, http_agent, wait_for, Stack, StackOptions};

struct Case {
    name: String,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn json_case(name: impl Into<String>, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name: name.into(),
        method: "POST",
        path: "/telegram",
        headers: vec![
            ("Content-Type", "application/json".into()),
            ("X-Telegram-Bot-Api-Secret-Token", TEST_SECRET.into()),
        ],
        body: body.into(),
    }
}

fn corpus() -> Vec<Case> {
    let good = fixture("updates/message_start.json").trim().to_string();
    let mut cases = Vec::new();
    // Not JSON objects at all.
    for (name, body) in [
        ("empty", ""),
        ("whitespace", "   \n"),
        ("null", "null"),
        ("true", "true"),
        ("number", "123"),
        ("string", "\"update\""),
        ("array", "[]"),
        ("array of updates", "[{\"update_id\":1}]"),
        ("empty object", "{}"),
        ("not JSON", "hello telegram"),
        ("XML", "<update id=\"1\"/>"),
        ("form data", "update_id=1&message=hi"),
        ("BOM", "\u{feff}{\"update_id\":1}"),
        ("NUL bytes", "{\"update_id\":1}\0\0"),
        ("trailing garbage", "{\"update_id\":1} x"),
        ("two objects", "{\"update_id\":1}{\"update_id\":2}"),
        ("duplicate update_id", "{\"update_id\":1,\"update_id\":2}"),
        ("single quotes", "{'update_id':1}"),
        ("comment", "{\"update_id\":1 /* hi */}"),
    ] {
        cases.push(json_case(name, body));
    }
    // Truncated at many points.
    for cut in [1, 5, 10, 20, 40, 80, good.len() / 2, good.len() - 1] {
        cases.push(json_case(
            format!("truncated at {cut}"),
            &good.as_bytes()[..cut],
        ));
    }
    // Wrong types.
    for (name, body) in [
        ("update_id string", r#"{"update_id":"1"}"#),
        ("update_id float", r#"{"update_id":1.5}"#),
        ("update_id bool", r#"{"update_id":true}"#),
        ("update_id null", r#"{"update_id":null}"#),
        ("update_id array", r#"{"update_id":[1]}"#),
        ("message string", r#"{"update_id":1,"message":"hi"}"#),
        ("message array", r#"{"update_id":1,"message":[]}"#),
        (
            "chat id string",
            r#"{"update_id":1,"message":{"chat":{"id":"x","type":"private"}}}"#,
        ),
        (
            "from id object",
            r#"{"update_id":1,"message":{"from":{"id":{}}}}"#,
        ),
        ("text number", r#"{"update_id":1,"message":{"text":5}}"#),
        (
            "callback id array",
            r#"{"update_id":1,"callback_query":{"id":[]}}"#,
        ),
    ] {
        cases.push(json_case(name, body));
    }
    // Huge numbers.
    for (name, body) in [
        ("update_id 1e400", r#"{"update_id":1e400}"#),
        ("update_id 2^64", r#"{"update_id":18446744073709551616}"#),
        (
            "update_id 30 digits",
            r#"{"update_id":123456789012345678901234567890}"#,
        ),
        (
            "chat id beyond i64",
            r#"{"update_id":1,"message":{"chat":{"id":9223372036854775808,"type":"private"}}}"#,
        ),
    ] {
        cases.push(json_case(name, body));
    }
    // Deep nesting.
    for depth in [100, 10_000, 200_000] {
        let body = format!(
            "{{\"update_id\":1,\"message\":{{\"x\":{}{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        cases.push(json_case(format!("nested {depth} deep"), body));
        let body = format!(
            "{{\"update_id\":1,\"y\":{}1{}}}",
            "{\"a\":".repeat(depth),
            "}".repeat(depth)
        );
        cases.push(json_case(format!("nested objects {depth} deep"), body));
    }
    // Oversized bodies and fields.
    for mb in [1, 3] {
        let text = "a".repeat(mb * 1024 * 1024);
        cases.push(json_case(
            format!("{mb} MB text field"),
            format!("{{\"update_id\":1,\"message\":{{\"text\":\"{text}\"}}}}"),
        ));
    }
    cases.push(json_case("300 KB of whitespace", " ".repeat(300 * 1024)));
    // Invalid UTF-8.
    cases.push(json_case(
        "invalid UTF-8 in a string",
        b"{\"update_id\":1,\"x\":\"\xff\xfe\"}".to_vec(),
    ));
    cases.push(json_case(
        "overlong UTF-8",
        b"{\"update_id\":1,\"x\":\"\xc0\xaf\"}".to_vec(),
    ));
    cases.push(json_case(
        "lone surrogate escape in text",
        r#"{"update_id":1,"message":{"text":"\ud800"}}"#,
    ));
    // Wrong content types.
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ] {
        let mut case = json_case(format!("content type {content_type}"), good.clone());
        case.headers[0].1 = content_type.into();
        cases.push(case);
    }
    // Missing or wrong secret.
    let long_secret = "x".repeat(8_000);
    for (name, secret) in [
        ("no secret", None),
        ("empty secret", Some(String::new())),
        ("wrong secret", Some("wrong".to_string())),
        ("secret in other case", Some(TEST_SECRET.to_uppercase())),
        ("secret with a space", Some(format!("{TEST_SECRET} "))),
        ("secret prefix", Some(TEST_SECRET[..4].to_string())),
        ("8 KB secret", Some(long_secret)),
    ] {
        let mut case = json_case(name, good.clone());
        case.headers
            .retain(|(h, _)| *h != "X-Telegram-Bot-Api-Secret-Token");
        if let Some(secret) = secret {
            case.headers
                .push(("X-Telegram-Bot-Api-Secret-Token", secret));
        }
        cases.push(case);
    }
    // Wrong methods and unknown paths.
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let mut case = json_case(format!("{method} /telegram"), good.clone());
        case.method = method;
        cases.push(case);
    }
    for path in [
        "/",
        "/telegram/",
        "/TELEGRAM",
        "/telegram/x",
        "/health/x",
        "/%00",
        "/..%2f..%2fetc/passwd",
        "/__dev/enqueue",
        "/__dev/outbox",
        "/__dev/kill",
    ] {
        let mut case = json_case(format!("POST {path}"), good.clone());
        case.path = path;
        cases.push(case);
    }
    cases
}

#[test]
fn hostile_requests_get_4xx_and_the_bot_keeps_serving() {
    let stack = Stack::start(StackOptions::default());
    let agent = http_agent(Duration::from_secs(30));
    let cases = corpus();
    let mut failures = Vec::new();
    for case in &cases {
        let url = stack.url(case.path);
        let mut request = ureq::http::Request::builder().method(case.method).uri(&url);
        for (name, value) in &case.headers {
            request = request.header(*name, value.as_str());
        }
        let request = request.body(case.body.clone()).expect("request");
        match agent.run(request) {
            Ok(response) => {
                let status = response.status().as_u16();
                if !(400..500).contains(&status) {
                    failures.push(format!("{}: {status}", case.name));
                }
            }
            Err(error) => failures.push(format!("{}: no answer ({error})", case.name)),
        }
    }
    assert!(failures.is_empty(), "not a 4xx: {failures:#?}");
    println!(
        "e2e: {} hostile requests, every one answered 4xx",
        cases.len()
    );

    // The Worker still serves good requests, and tracks them.
    let (status, _) = stack.post_update(&fixture("updates/message_start.json"), Some(TEST_SECRET));
    assert_eq!(status, 200);
    wait_for("the good update's events", Duration::from_secs(60), || {
        let n = stack.d1_count("SELECT count(*) FROM analytics_points_local WHERE blob4 = 'start'");
        (n == 1).then_some(())
    });
    assert!(!stack.log().contains("panicked"), "no panic in the Worker");
}
