//! A name server for the lab: answers A and TXT questions from a fixed zone, so a node in a
//! lab host resolves `/dns4`, `/dns` and `/dnsaddr` bootnodes with no traffic leaving the
//! machine. Nodes find it through `ip netns exec`'s per-namespace files: [`NameServer::serve`]
//! writes `/etc/netns/<namespace>/resolv.conf` naming it (removed again on drop).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::lab::{Host, Lab};

/// What the server knows: names to IPv4 addresses, and names to TXT strings.
#[derive(Debug, Clone, Default)]
pub struct Zone {
    a: HashMap<String, Ipv4Addr>,
    txt: HashMap<String, Vec<String>>,
}

impl Zone {
    /// `name` (no trailing dot) resolves to `ip`.
    pub fn a(mut self, name: &str, ip: Ipv4Addr) -> Self {
        self.a.insert(name.to_ascii_lowercase(), ip);
        self
    }

    /// `name`'s TXT records hold `text`, one record each.
    pub fn txt(mut self, name: &str, text: &[String]) -> Self {
        self.txt.insert(name.to_ascii_lowercase(), text.to_vec());
        self
    }

    fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        response.metadata.authoritative = true;
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        let mut found = false;
        for q in &request.queries {
            response.queries.push(q.clone());
            let name = q
                .name()
                .to_ascii()
                .trim_end_matches('.')
                .to_ascii_lowercase();
            match q.query_type() {
                RecordType::A => {
                    if let Some(ip) = self.a.get(&name) {
                        found = true;
                        response.answers.push(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A(*ip)),
                        ));
                    }
                }
                RecordType::TXT => {
                    for text in self.txt.get(&name).into_iter().flatten() {
                        found = true;
                        response.answers.push(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::TXT(TXT::new(vec![text.clone()])),
                        ));
                    }
                }
                _ => {}
            }
            found |= self.a.contains_key(&name) || self.txt.contains_key(&name);
        }
        if !found {
            response.metadata.response_code = ResponseCode::NXDomain;
        }
        response.to_vec().ok()
    }
}

/// A running name server in a lab host, named by one namespace's `resolv.conf`.
#[derive(Debug)]
pub struct NameServer {
    task: JoinHandle<()>,
    conf_dir: PathBuf,
}

impl NameServer {
    /// Serves `zone` on UDP port 53 of `at`'s address, and names it as the only name server
    /// of the processes `lab` starts in `client`.
    pub async fn serve(lab: &Lab, at: Host, client: Host, zone: Zone) -> anyhow::Result<Self> {
        let addr = SocketAddr::from((lab.ip(at), 53));
        let socket = lab
            .in_host(at, || {
                let s = std::net::UdpSocket::bind(addr)?;
                s.set_nonblocking(true)?;
                Ok::<_, std::io::Error>(s)
            })?
            .with_context(|| format!("binding the name server at {addr}"))?;
        let socket = UdpSocket::from_std(socket)?;
        let conf_dir = PathBuf::from("/etc/netns").join(lab.netns(client));
        std::fs::create_dir_all(&conf_dir)?;
        std::fs::write(
            conf_dir.join("resolv.conf"),
            format!("nameserver {}\noptions timeout:1 attempts:2\n", addr.ip()),
        )?;
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                if let Some(answer) = buf.get(..n).and_then(|q| zone.answer(q)) {
                    let _ = socket.send_to(&answer, from).await;
                }
            }
        });
        Ok(Self { task, conf_dir })
    }
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.conf_dir);
    }
}
