//! The dashboard's SQL API call has a timeout (issue 21, item 8): an SQL API that accepts the
//! connection and never answers costs the page at most the timeout, and the page says so in
//! its Analytics Engine sections instead of hanging.

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use e2e_tests::dashboard::{AeData, Dashboard, DashboardOptions, TEST_PASSWORD};
use e2e_tests::{Stack, StackOptions};

#[test]
fn a_hung_sql_api_is_a_timeout_on_the_page_not_a_hung_page() {
    // Accepts every connection, reads what comes, and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let _ = stream.read(&mut [0u8; 4096]);
            held.push(stream);
        }
    });
    let stack = Stack::start(StackOptions::default());
    let dashboard = Dashboard::start(
        &stack,
        "hung",
        DashboardOptions {
            password: Some(TEST_PASSWORD.into()),
            data: AeData::SqlApi(format!("http://127.0.0.1:{port}/client/v4")),
            funnels: None,
        },
    );
    let started = Instant::now();
    let page = dashboard.get_ok("/");
    let took = started.elapsed();
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        took < Duration::from_secs(25),
        "the page took {took:?} with a hung SQL API"
    );
    assert!(
        page.body.contains("the SQL API gave no answer within 10 s"),
        "{}",
        page.body
    );
}
