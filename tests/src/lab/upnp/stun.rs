//! The smallest STUN server miniupnpd's check needs (RFC 5389 binding requests only): each
//! request is answered from the address it was sent to, with a MAPPED-ADDRESS that names the
//! address and port it came from. It ignores CHANGE-REQUEST, which miniupnpd 2.3.1 does not
//! check the answers for (see the parent module). It runs in a router, on the router's own WAN
//! address, for as long as its gateway.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::lab::LabError;

/// How often the server's thread looks whether it should stop.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A STUN header, and the longest request taken (a binding request with a few attributes).
const HEADER_LEN: usize = 20;
const MAX_REQUEST: usize = 512;

/// The magic cookie of RFC 5389.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// A running server; dropping it stops its thread.
pub(in crate::lab) struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` on a free port (call this inside the router, [`crate::lab::Lab::in_host`])
    /// and answers from a thread of its own.
    pub(in crate::lab) fn start(addr: Ipv4Addr) -> Result<Server, LabError> {
        let socket = UdpSocket::bind((addr, 0))
            .map_err(|source| LabError::io("binding the STUN server", source))?;
        socket
            .set_read_timeout(Some(STOP_CHECK))
            .map_err(|source| LabError::io("setting the STUN server's timeout", source))?;
        let port = socket
            .local_addr()
            .map_err(|source| LabError::io("reading the STUN server's port", source))?
            .port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || serve(&socket, &stopped));
        Ok(Server {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// The port it answers on.
    pub(in crate::lab) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, stop: &AtomicBool) {
    let mut buf = [0u8; MAX_REQUEST];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((len, from)) => {
                if let Some(answer) = answer(&buf[..len], from) {
                    let _ = socket.send_to(&answer, from);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}

/// The binding success answer to `request` from `from`, or `None` for anything else.
fn answer(request: &[u8], from: SocketAddr) -> Option<Vec<u8>> {
    let SocketAddr::V4(from) = from else {
        return None;
    };
    if request.len() < HEADER_LEN || request[..2] != [0x00, 0x01] || request[4..8] != MAGIC_COOKIE {
        return None;
    }
    let mut answer = Vec::with_capacity(HEADER_LEN + 12);
    answer.extend_from_slice(&[0x01, 0x01, 0x00, 12]);
    answer.extend_from_slice(&request[4..HEADER_LEN]);
    // MAPPED-ADDRESS: family IPv4, the port and the address the request came from.
    answer.extend_from_slice(&[0x00, 0x01, 0x00, 8, 0x00, 0x01]);
    answer.extend_from_slice(&from.port().to_be_bytes());
    answer.extend_from_slice(&from.ip().octets());
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_request_is_answered_with_the_address_it_came_from() {
        let mut request = vec![0x00, 0x01, 0x00, 0x08];
        request.extend_from_slice(&MAGIC_COOKIE);
        request.extend_from_slice(&[7; 12]);
        request.extend_from_slice(&[0x00, 0x03, 0x00, 0x04, 0, 0, 0, 0x06]);
        let from: SocketAddr = "198.51.100.101:42437"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        let got = answer(&request, from).unwrap_or_default();
        assert_eq!(got.len(), 32);
        assert_eq!(got[..4], [0x01, 0x01, 0x00, 12]);
        assert_eq!(got[8..20], [7; 12], "the transaction id");
        assert_eq!(got[26..28], 42437u16.to_be_bytes());
        assert_eq!(got[28..], [198, 51, 100, 101]);
        assert_eq!(answer(&request[..10], from), None);
        request[1] = 0x11;
        assert_eq!(answer(&request, from), None);
    }
}
