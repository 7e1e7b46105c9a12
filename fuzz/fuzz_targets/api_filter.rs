//! `ListPeers`' filters as any API client may send them: two strings, split from the input at
//! its first NUL byte (lossy UTF-8, as gRPC strings arrive already checked as UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (a, b) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (peer_id, node_id) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    match peerfind::api::check_peers_filter(&peer_id, &node_id) {
        // A refusal repeats at most a bounded part of what was sent.
        Err(message) => assert!(message.len() < 1024, "{} bytes", message.len()),
        Ok(_) => {}
    }
});
