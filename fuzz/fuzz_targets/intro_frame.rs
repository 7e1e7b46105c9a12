//! `/peerfind/intro/1.0.0` frames as a remote sends them: each input read as a request and as a
//! response by the protocol's codec; a request that reads back as a valid one must survive
//! being written and read again unchanged.
#![no_main]

use futures::executor::block_on;
use futures::io::Cursor;
use libfuzzer_sys::fuzz_target;
use libp2p::request_response::Codec as _;
use peerfind_behaviours::intro::protocol::{Codec, PROTOCOL, Request};

fuzz_target!(|data: &[u8]| {
    let mut codec = Codec::default();
    let request = block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(data)));
    let _ = block_on(codec.read_response(&PROTOCOL, &mut Cursor::new(data)));
    if let Ok(request) = request
        && !matches!(request, Request::Invalid(_))
    {
        let mut wire = Cursor::new(Vec::new());
        if block_on(codec.write_request(&PROTOCOL, &mut wire, request.clone())).is_ok() {
            let again =
                block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(wire.into_inner())));
            assert_eq!(again.ok(), Some(request));
        }
    }
});
