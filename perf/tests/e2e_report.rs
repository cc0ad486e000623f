//! perf/e2e/report.py on hand-made raw files: a load whose tool reported errors (wrk's error
//! counters, iperf3's "error") gives no figure, and `report.py check` fails the run naming
//! it. Needs python3 (as perf/e2e/run.sh does); without it the test fails, it does not skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn report_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/report.py")
}

fn report(args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-B")
        .arg(report_py())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to run perf/e2e/report.py: {e}"))
}

fn wrk_line(rate: f64, err_read: u64, err_timeout: u64) -> String {
    format!(
        "{{\"requests\":1000,\"duration_s\":1.000,\"rate\":{rate},\"bytes\":100000,\"p50_us\":500,\"p99_us\":2000,\
         \"p999_us\":3000,\"max_us\":4000,\"mean_us\":600.0,\"err_connect\":0,\"err_read\":{err_read},\
         \"err_write\":0,\"err_status\":0,\"err_timeout\":{err_timeout}}}\n"
    )
}

const IPERF_OK: &str = r#"{"end": {"sum_received": {"bits_per_second": 2500000000}, "sum_sent": {"retransmits": 3}}}"#;
const IPERF_ERROR: &str = r#"{"start": {}, "end": {}, "error": "control socket has closed unexpectedly"}"#;

/// Writes one system's raw files into `work` and returns its `report.py system` line.
fn system_line(work: &Path, system: &str, keepalive: &str, close: &str, iperf3: &str) -> Value {
    let file = |ext: &str, text: &str| std::fs::write(work.join(format!("{system}.{ext}")), text).unwrap();
    file("meta.json", r#"{"kind":"kernel","mode":"nat","seconds":1,"connections":32,"threads":1,"load1":0.5}"#);
    file("keepalive.json", keepalive);
    file("close.json", close);
    file("iperf3.json", iperf3);
    let out = report(&["system", work.to_str().unwrap(), system]);
    assert!(out.status.success(), "report.py system: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(work.join(format!("{system}.result.json")), &out.stdout).unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_load_with_tool_errors_has_no_figure_and_fails_the_check() {
    let work = std::env::temp_dir().join(format!("rvs-e2e-report-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let w = work.to_str().unwrap();

    let good = system_line(&work, "good", &wrk_line(5000.0, 0, 0), &wrk_line(800.0, 0, 0), IPERF_OK);
    assert_eq!(
        (good["rps"].as_f64(), good["cps"].as_f64(), good["gbps"].as_f64()),
        (Some(5000.0), Some(800.0), Some(2.5))
    );
    assert_eq!(good["failed"], serde_json::json!([]), "{good}");
    assert!(report(&["check", w, "good"]).status.success());

    let bad = system_line(&work, "bad", &wrk_line(5000.0, 7, 2), &wrk_line(800.0, 0, 0), IPERF_ERROR);
    assert!(bad["rps"].is_null() && bad["p99_ms"].is_null(), "keep-alive had wrk errors: {bad}");
    assert_eq!(bad["cps"].as_f64(), Some(800.0), "the clean load keeps its figure: {bad}");
    assert!(bad["gbps"].is_null(), "{bad}");
    assert_eq!(bad["errors_keepalive"], 9, "{bad}");
    let failed: Vec<&str> = bad["failed"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(failed.len(), 2, "{bad}");
    assert!(failed[0].contains("keepalive: wrk reported 9 errors (read 7, timeout 2)"), "{failed:?}");
    assert!(failed[1].contains("iperf3: control socket has closed unexpectedly"), "{failed:?}");

    let out = report(&["check", w, "good", "bad"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("bad: keepalive: wrk reported 9 errors") && !err.contains("good:"), "{err}");
    std::fs::remove_dir_all(&work).unwrap();
}
