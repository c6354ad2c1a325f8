//! The simulator's trace mode, as a user runs it: a CSV trace in, one JSON object out.

use std::process::Command;

fn economy(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_economy"))
        .args(args)
        .output()
        .expect("run economy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn a_trace_gives_one_json_object_of_integers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    // A burst of 10 updates 2 s apart, then one an hour later.
    let mut trace = String::from("# offset_ms,events,error_events\n");
    for i in 0..10 {
        trace += &format!("{},3,0\n", i * 2_000);
    }
    trace += "3600000,4,1\n";
    std::fs::write(&path, trace).unwrap();
    let (code, stdout, stderr) = economy(&["--trace", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let fields = [
        "events",
        "queue_messages",
        "queue_operations",
        "ae_points",
        "d1_rows_written",
        "consumer_invocations",
    ];
    for field in fields {
        assert!(json[field].is_u64(), "{field}: {json}");
    }
    assert_eq!(json.as_object().unwrap().len(), fields.len());
    assert_eq!(json["events"], 34);
    assert_eq!(json["ae_points"], 34);
    // With the default window the burst shares messages: 30 events in 2, and the late update
    // its own (25 + 5, then 4).
    assert_eq!(json["queue_messages"], 3);
    assert_eq!(json["queue_operations"], 9);

    // --window-ms 0: one message per update.
    let (_, stdout, _) = economy(&[
        "--trace",
        path.to_str().unwrap(),
        "--json",
        "--window-ms",
        "0",
    ]);
    let json: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(json["queue_messages"], 11);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "0,3,0\n5,x,0\n").unwrap();
    let (code, _, stderr) = economy(&["--trace", path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 2") && stderr.contains("events"),
        "{stderr}"
    );
    let (code, _, stderr) = economy(&["--json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--trace"), "{stderr}");
    let (code, _, stderr) = economy(&["--trace", "/nonexistent/trace.csv", "--json"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read"), "{stderr}");
}

#[test]
fn isolates_spread_a_trace_and_keep_the_json_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trace.csv");
    // 40 updates of 2 events, 1 s apart: one isolate packs them 25 events to a message.
    let trace: String = (0..40)
        .map(|i| format!("{},2,0,{}\n", i * 1_000, i % 7))
        .collect();
    std::fs::write(&path, trace).unwrap();
    let path = path.to_str().unwrap();
    let run = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["--trace", path, "--json"];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = economy(&args);
        assert_eq!(code, 0, "{extra:?}: {stderr}");
        let json: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
        let fields = [
            "events",
            "queue_messages",
            "queue_operations",
            "ae_points",
            "d1_rows_written",
            "consumer_invocations",
        ];
        for field in fields {
            assert!(json[field].is_u64(), "{field}: {json}");
        }
        assert_eq!(json.as_object().unwrap().len(), fields.len(), "{json}");
        json
    };
    let default = run(&[]);
    assert_eq!(default, run(&["--isolates", "1"]));
    assert_eq!(default["queue_messages"], 4);
    // Every request on the warm isolate: the same as one isolate.
    assert_eq!(default, run(&["--isolates", "8", "--routing", "sticky:1"]));
    let spread = run(&["--isolates", "8"]);
    assert_eq!(spread["events"], 80);
    assert!(
        spread["queue_messages"].as_u64() > default["queue_messages"].as_u64(),
        "{spread} vs {default}"
    );
    let sticky = run(&["--isolates", "8", "--routing", "sticky"]);
    assert!(sticky["queue_messages"].as_u64() <= spread["queue_messages"].as_u64());

    for (bad, why) in [
        (&["--isolates", "0"][..], "--isolates"),
        (&["--isolates", "x"][..], "--isolates"),
        (&["--isolates"][..], "--isolates needs"),
        (&["--routing", "round-robin"][..], "--routing"),
        (&["--routing", "sticky:1.5"][..], "sticky share"),
    ] {
        let mut args = vec!["--trace", path, "--json"];
        args.extend_from_slice(bad);
        let (code, _, stderr) = economy(&args);
        assert_eq!(code, 2, "{bad:?}");
        assert!(stderr.contains(why), "{bad:?}: {stderr}");
    }
}

#[test]
fn the_scale_mode_reports_the_limits_of_a_small_day() {
    let (code, stdout, stderr) = economy(&["--scale", "--events", "2000"]);
    assert_eq!(code, 0, "{stderr}");
    for part in [
        "SQLite in memory",
        "SQLite file, WAL",
        "`request_attempts`",
        "one D1 database: 10 GB",
        "queue messages a second",
        "**Before**",
        "**After**",
        "first to bind",
    ] {
        assert!(stdout.contains(part), "{part} in {stdout}");
    }
    for (bad, why) in [
        (&["--scale", "--events", "10"][..], "--events"),
        (&["--events", "5000"][..], "--events goes with --scale"),
    ] {
        let (code, _, stderr) = economy(bad);
        assert_eq!(code, 2, "{bad:?}");
        assert!(stderr.contains(why), "{bad:?}: {stderr}");
    }
}
