//! Backpressure and adaptive group commit: a sender far ahead of a slow
//! detector keeps the server's memory flat, Kapacitor keeps hearing
//! keepalive answers while the worker's queue is full, and a burst of
//! batches scored and committed together never loses the state of a point
//! Kapacitor received (SIGKILL).

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tickwatch_engine::kapacitor::Batch;
use tickwatch_proto::agent::{self, request, response};
use tickwatch_proto::{read_response, write_message};

use crate::support::{self, o};

fn frame(bytes: &mut Vec<u8>, m: request::Message) {
    write_message(bytes, &agent::Request { message: Some(m) }).unwrap();
}

/// Info and Init of a `faulty` node tracking `hotend` in `mode`.
fn faulty_start(mode: &str, delay_ms: i64) -> Vec<u8> {
    let mut bytes = Vec::new();
    frame(&mut bytes, request::Message::Info(agent::InfoRequest {}));
    let mut options = support::field_calls(&["hotend"]);
    options.push(o::call("mode", vec![o::s(mode)]));
    options.push(o::call("delayMs", vec![o::i(delay_ms)]));
    frame(
        &mut bytes,
        request::Message::Init(agent::InitRequest {
            task_id: "t".into(),
            node_id: "n".into(),
            options,
        }),
    );
    bytes
}

fn encode_batch(bytes: &mut Vec<u8>, b: &Batch) {
    frame(bytes, request::Message::Begin(b.begin.clone()));
    for p in &b.points {
        frame(bytes, request::Message::Point(p.clone()));
    }
    frame(bytes, request::Message::End(b.end.clone()));
}

/// `tickwatch serve --detector faulty` on raw pipes, so one thread can write
/// as fast as the pipe takes while another reads. The watchdog is off: these
/// detectors are slow on purpose, and the watchdog has its own test.
fn spawn_faulty(state_dir: &Path) -> (Child, ChildStdout) {
    let mut child = Command::new(support::bin())
        .args(["serve", "--detector", "faulty", "--log", "warn", "--batch-timeout", "off"])
        .arg("--plugin-dir")
        .arg(support::test_plugin_dir())
        .arg("--state-dir")
        .arg(state_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, stdout)
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `batches` as fast as the server reads them, then a Snapshot
/// request; reads until the SnapshotResponse (every batch scored) and
/// returns the server's peak RSS then, in KiB.
fn peak_rss_after(batches: &[Batch]) -> u64 {
    let mut bytes = faulty_start("slow", 1);
    for b in batches {
        encode_batch(&mut bytes, b);
    }
    frame(&mut bytes, request::Message::Snapshot(agent::SnapshotRequest {}));
    let dir = support::fresh_state_dir();
    let (mut child, mut stdout) = spawn_faulty(&dir);
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&bytes).unwrap();
        stdin
    });
    let mut buf = Vec::new();
    let mut points = 0;
    loop {
        match read_response(&mut stdout, &mut buf).unwrap() {
            Some(agent::Response { message: Some(response::Message::Snapshot(_)) }) => break,
            Some(agent::Response { message: Some(response::Message::Point(_)) }) => points += 1,
            Some(agent::Response { message: Some(response::Message::Error(e)) }) => {
                panic!("ErrorResponse: {}", e.error)
            }
            Some(_) => {}
            None => panic!("output closed before the SnapshotResponse"),
        }
    }
    assert!(points + 8 >= batches.len(), "{points} points for {} batches", batches.len());
    let hwm = vm_hwm_kib(child.id());
    drop(writer.join().unwrap());
    assert!(child.wait().unwrap().success());
    hwm
}

#[test]
fn a_sender_far_ahead_of_a_slow_detector_keeps_rss_flat() {
    // One printer day (288 windows, 86,402 points), then four at once (1,152
    // windows, 345,608 points, 4x the bytes). Decoded ahead of a detector
    // that takes a millisecond per window, the larger stream alone would
    // hold well over 100 MiB; bounded queues hold the same for both.
    let small = peak_rss_after(&support::day_batches(&[("", 71)]));
    let large =
        peak_rss_after(&support::day_batches(&[("a", 72), ("b", 73), ("c", 74), ("d", 75)]));
    assert!(
        large <= small + 12 * 1024,
        "peak RSS grew with the input: {small} KiB for one day, {large} KiB for four"
    );
    assert!(large < 96 * 1024, "peak RSS {large} KiB");
}

#[test]
fn keepalives_are_answered_while_the_workers_queue_is_full() {
    // The detector takes a minute per window: the first batch occupies the
    // worker, the next fill its queue, and the rest wait in the pipe behind
    // a reader that stopped reading. Kapacitor (whose timer any response
    // resets) must keep hearing from us, as it does before the queue fills.
    let mut bytes = faulty_start("slow", 60_000);
    let batches = support::day_batches(&[("a", 76), ("b", 77), ("c", 78), ("d", 79)]);
    for (i, b) in batches.iter().enumerate() {
        if i % 10 == 0 {
            frame(
                &mut bytes,
                request::Message::Keepalive(agent::KeepaliveRequest { time: i as i64 + 1 }),
            );
        }
        encode_batch(&mut bytes, b);
    }
    let dir = support::fresh_state_dir();
    let (mut child, mut stdout) = spawn_faulty(&dir);
    let mut stdin = child.stdin.take().unwrap();
    let written = Arc::new(AtomicBool::new(false));
    let done = written.clone();
    let writer = std::thread::spawn(move || {
        // Fails with EPIPE once the child is killed.
        if stdin.write_all(&bytes).is_ok() {
            done.store(true, Ordering::SeqCst);
        }
    });
    let mut buf = Vec::new();
    let mut answers = Vec::new();
    let start = Instant::now();
    let mut last = Instant::now();
    while start.elapsed() < Duration::from_secs(6) {
        match read_response(&mut stdout, &mut buf).unwrap() {
            Some(agent::Response { message: Some(response::Message::Keepalive(k)) }) => {
                // Kapacitor's default timeout is 10 s; half of it is plenty.
                assert!(last.elapsed() < Duration::from_secs(5), "silent for {:?}", last.elapsed());
                last = Instant::now();
                answers.push(k.time);
            }
            Some(agent::Response { message: Some(response::Message::Point(_)) }) => {
                panic!("a point from a detector that is still asleep")
            }
            Some(agent::Response { message: Some(response::Message::Error(e)) }) => {
                panic!("ErrorResponse: {}", e.error)
            }
            Some(_) => {}
            None => panic!("output closed"),
        }
    }
    let full = !written.load(Ordering::SeqCst);
    child.kill().unwrap();
    child.wait().unwrap();
    writer.join().unwrap();
    assert!(full, "the whole stream was read: the queue never filled");
    // Answers kept coming after the reader stopped reading: more of them
    // than the keepalives it read.
    let distinct = {
        let mut d = answers.clone();
        d.dedup();
        d.len()
    };
    assert!(answers.len() >= distinct + 3, "answers {answers:?}");
}

#[test]
fn sigkill_after_a_burst_never_loses_the_state_of_a_received_point() {
    // All windows of a day arrive at once, so the worker scores several per
    // commit. Whatever Kapacitor received before the kill, the persisted
    // state has counted at least those windows: the next process's first
    // verdict continues after the last one received, never repeats it.
    let batches = support::day_batches(&[("", 80)]);
    let dir = support::fresh_state_dir();
    let start = |dir: &Path| {
        let mut udf = support::spawn_detector("faulty", &support::test_plugin_dir(), dir, &[]);
        udf.info().unwrap();
        let mut opts = support::field_calls(&["hotend"]);
        opts.push(o::call("mode", vec![o::s("ok")]));
        let r = udf.init("t", "n", opts).unwrap();
        assert!(r.success, "{}", r.error);
        udf
    };
    let windows = |points: &[agent::Point]| -> Vec<f64> {
        points.iter().map(|p| p.fields_double["w"]).collect()
    };
    let mut first = start(&dir);
    let mut bytes = Vec::new();
    for b in &batches {
        encode_batch(&mut bytes, b);
    }
    first.send_bytes(&bytes).unwrap();
    first.wait_points(100).unwrap();
    let seen = windows(&first.take_points());
    first.kill().unwrap();
    let last = seen.iter().copied().fold(0.0, f64::max);
    assert!(last >= 100.0, "{seen:?}");

    let mut second = start(&dir);
    second.send_batch(&batches[0]).unwrap();
    second.send_batch(&batches[1]).unwrap();
    let closed = second.close().unwrap();
    assert_eq!(closed.error, None);
    let next = windows(&closed.points);
    assert!(!next.is_empty(), "no verdict after the restart");
    assert!(next[0] > last, "state went back: last received w = {last}, next w = {}", next[0]);
    assert!(next[0] <= batches.len() as f64 + 1.0, "{next:?}");
}
