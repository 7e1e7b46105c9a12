//! Delay and loss on a link, emulated in user space: the lab's kernel may have no `netem`.
//!
//! An impaired link is a pair of TAP devices where a veth pair would be: one in the host, named
//! as the host's interface, and one where the peer's end would be (a bridge port, or a router's
//! LAN interface). This process holds both, and a thread per direction reads every frame one
//! TAP sends, drops it with the link's loss rate, and writes it into the other TAP once the
//! delay has passed. TAP devices take no checksum or segmentation offloads, so every frame read
//! is complete and can be written on as it is.
//!
//! The link therefore lives only as long as the [`super::Lab`] value: a lab left running with
//! [`super::Lab::keep`] loses its impaired links when its process ends.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{LabError, netns};

/// The largest frame a TAP hands over: far above the 1500-byte MTU, so no frame is cut.
const FRAME_MAX: usize = 65_536;

/// The most frames held back in one direction; more are dropped, as a router's full queue
/// would. At 1500 bytes a frame that is 6 MB, and at a 100 ms delay 40,000 frames a second.
const MAX_QUEUED: usize = 4096;

/// How often an idle forwarding thread looks whether the link is being taken down: the most a
/// teardown waits for it.
const IDLE_TICK: Duration = Duration::from_millis(20);

/// What a link does to every frame, the same in both directions.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct Impairment {
    /// How long each frame takes to cross, one way: a round trip over the link grows by twice
    /// this.
    pub delay: Duration,
    /// The share of frames lost, from 0.0 to 1.0, drawn for each frame and each direction.
    pub loss: f64,
}

impl Impairment {
    /// A one-way `delay` and no loss.
    pub fn delay(delay: Duration) -> Self {
        Self { delay, loss: 0.0 }
    }

    /// This impairment, also losing the share `loss` of the frames.
    pub fn with_loss(self, loss: f64) -> Self {
        Self { loss, ..self }
    }
}

/// One end of an impaired link: an interface to be made in a namespace.
pub(super) struct End<'a> {
    /// The namespace.
    pub(super) netns: &'a str,
    /// The interface's name there.
    pub(super) device: &'a str,
}

/// A running impaired link. Dropping it stops the forwarding and removes both TAP devices.
pub(super) struct Wire {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Wire {
    /// Makes the two TAP devices (down and without addresses: configure them as veth ends) and
    /// starts forwarding between them.
    pub(super) fn start(a: End<'_>, b: End<'_>, impairment: Impairment) -> Result<Wire, LabError> {
        let a = Arc::new(tap(&a)?);
        let b = Arc::new(tap(&b)?);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = [(a.clone(), b.clone()), (b, a)]
            .into_iter()
            .map(|(from, to)| {
                let stop = stop.clone();
                let seed = super::random_u64();
                std::thread::Builder::new()
                    .name("lab-wire".into())
                    .spawn(move || forward(&from, &to, impairment, &stop, seed))
                    .map_err(|source| LabError::io("starting a link's thread", source))
            })
            .collect::<Result<_, _>>()?;
        Ok(Wire { stop, threads })
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            // A forwarding thread does not panic; if it did, the link is gone either way.
            let _ = thread.join();
        }
    }
}

/// Makes a TAP device in `end`'s namespace; it lives as long as the returned value.
fn tap(end: &End<'_>) -> Result<tun::Device, LabError> {
    let mut config = tun::Configuration::default();
    config.tun_name(end.device).layer(tun::Layer::L2);
    // `ip` configures it like every other interface.
    config.platform_config(|platform| {
        platform.ensure_root_privileges(false);
    });
    netns::enter(end.netns, || tun::create(&config))?.map_err(|error| {
        LabError::io(
            format!("making TAP device {} in {}", end.device, end.netns),
            io::Error::other(error),
        )
    })
}

/// Moves frames from `from` to `to`, each `impairment.delay` late unless lost, until `stop`.
fn forward(
    from: &tun::Device,
    to: &tun::Device,
    impairment: Impairment,
    stop: &AtomicBool,
    seed: u64,
) {
    let mut random = XorShift(seed | 1);
    let mut queue: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    let mut buf = vec![0u8; FRAME_MAX];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        while queue.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, frame)) = queue.pop_front() {
                // A frame the peer cannot take now is lost, as on a wire.
                let _ = to.send(&frame);
            }
        }
        let wait = queue
            .front()
            .map_or(IDLE_TICK, |(due, _)| due.saturating_duration_since(now))
            .min(IDLE_TICK);
        match from.recv_timeout(&mut buf, wait) {
            Ok(len) => {
                let lost = impairment.loss > 0.0 && random.unit() < impairment.loss;
                if !lost && queue.len() < MAX_QUEUED {
                    queue.push_back((Instant::now() + impairment.delay, buf[..len].to_vec()));
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                ) => {}
            // The device is gone: nothing left to forward.
            Err(_) => return,
        }
    }
}

/// A small, fast generator for loss draws (xorshift64*): no statistics beyond a fair coin are
/// needed.
struct XorShift(u64);

impl XorShift {
    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11;
        // 53 bits fit a f64's mantissa exactly.
        bits as f64 / (1u64 << 53) as f64
    }
}
