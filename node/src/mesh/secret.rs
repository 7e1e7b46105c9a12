//! The mesh secret (`--mesh-secret-file`) and the proof made with it.
//!
//! The secret is 32 random bytes that the operators of one network's bootnodes share, written
//! as 64 hex digits in a file (make one with `openssl rand -hex 32 > mesh.secret`, or
//! `head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > mesh.secret`, and keep it readable by
//! the node's user only). Like Tailscale's derper `--mesh-psk-file`, holding it is what makes a
//! node a member of the mesh without being known in advance.
//!
//! A proof is HMAC-SHA256 keyed with the secret over [`LABEL`], then the prover's and the
//! verifier's PeerIds (each its length as one byte, then its bytes). Binding both PeerIds
//! makes a proof worthless anywhere but between these two keys, which the connection's noise
//! handshake authenticates, so a proof seen (or asked for) cannot be replayed on another
//! connection; swapping prover and verifier gives another proof, so a node never gives out a
//! proof it would take. It is checked in constant time.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use libp2p::PeerId;
use sha2::Sha256;

/// What the MAC covers first: the protocol and its version, so that a proof for anything else
/// keyed with the same secret can never pass for one of these.
const LABEL: &[u8] = b"peerfind mesh 1";

/// Bytes in a secret (and in a proof): SHA-256's size, HMAC-SHA256's full strength.
pub const SECRET_LEN: usize = 32;

/// A proof: the MAC's 32 bytes.
pub type Proof = [u8; SECRET_LEN];

type HmacSha256 = Hmac<Sha256>;

/// The mesh secret. Its `Debug` prints no byte of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

/// Why a mesh secret could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read the mesh secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file does not hold 64 hex digits.
    #[error(
        "the mesh secret file {path} must hold 32 bytes as 64 hex digits (make one with `openssl rand -hex 32`)"
    )]
    Format {
        /// The file.
        path: String,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// The secret from its 64 hex digits, surrounding whitespace ignored.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = hex::decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The secret in the file `path`. A file others than its owner may read is taken, with a
    /// warning: a container's mounted secret often is.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Read {
            path: shown.clone(),
            source,
        })?;
        let secret = Self::from_hex(&text).ok_or(SecretError::Format {
            path: shown.clone(),
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(path = %shown, "the mesh secret file is readable by others than its owner (chmod 600 it)");
            }
        }
        Ok(secret)
    }

    /// The proof that `prover` holds this secret, for `verifier`.
    pub fn prove(&self, prover: &PeerId, verifier: &PeerId) -> Proof {
        self.mac(prover, verifier).finalize().into_bytes().into()
    }

    /// Whether `proof` is `prover`'s proof for `verifier`, compared in constant time.
    pub fn verify(&self, prover: &PeerId, verifier: &PeerId, proof: &[u8]) -> bool {
        self.mac(prover, verifier).verify_slice(proof).is_ok()
    }

    fn mac(&self, prover: &PeerId, verifier: &PeerId) -> HmacSha256 {
        // Any key length is valid for HMAC, so this cannot fail.
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(LABEL);
        for peer in [prover, verifier] {
            let bytes = peer.to_bytes();
            // A PeerId is a multihash of at most 66 bytes (a 64-byte digest and its header).
            mac.update(&[bytes.len() as u8]);
            mac.update(&bytes);
        }
        mac
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn a_secret_is_64_hex_digits_and_nothing_else() {
        assert!(Secret::from_hex(HEX).is_some());
        assert!(
            Secret::from_hex(&format!("  {HEX}\n")).is_some(),
            "a trailing newline"
        );
        assert!(Secret::from_hex(&HEX[..62]).is_none(), "31 bytes");
        assert!(Secret::from_hex(&format!("{HEX}00")).is_none(), "33 bytes");
        assert!(
            Secret::from_hex(&HEX.replace('0', "g")).is_none(),
            "not hex"
        );
        assert_eq!(format!("{:?}", Secret::from_hex(HEX).unwrap()), "Secret(…)");
    }

    #[test]
    fn a_proof_holds_only_for_its_prover_its_verifier_and_its_secret() {
        let secret = Secret::from_hex(HEX).unwrap();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let proof = secret.prove(&a, &b);
        assert!(secret.verify(&a, &b, &proof));
        assert!(!secret.verify(&b, &a, &proof), "the other direction");
        assert!(!secret.verify(&c, &b, &proof), "another prover");
        assert!(!secret.verify(&a, &c, &proof), "another verifier");
        let other = Secret::from_hex(&HEX.replace('0', "f")).unwrap();
        assert!(!other.verify(&a, &b, &proof), "another secret");
        assert!(!secret.verify(&a, &b, &proof[..16]), "a truncated proof");
    }

    #[test]
    fn the_proof_is_hmac_sha256_over_the_label_and_both_peer_ids() {
        // Computed by hand so that another implementation can check itself against it.
        let secret = Secret::from_hex(HEX).unwrap();
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&hex::decode(HEX).unwrap()).unwrap();
        let mut message = b"peerfind mesh 1".to_vec();
        for p in [a, b] {
            message.push(p.to_bytes().len() as u8);
            message.extend(p.to_bytes());
        }
        mac.update(&message);
        let expected: Proof = mac.finalize().into_bytes().into();
        assert_eq!(secret.prove(&a, &b), expected);
    }

    #[test]
    fn a_secret_file_loads_and_a_bad_one_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("mesh.secret");
        std::fs::write(&good, format!("{HEX}\n")).unwrap();
        assert_eq!(Secret::load(&good).unwrap(), Secret::from_hex(HEX).unwrap());
        let bad = dir.path().join("bad.secret");
        std::fs::write(&bad, "hunter2").unwrap();
        let error = Secret::load(&bad).unwrap_err().to_string();
        assert!(error.contains("openssl rand -hex 32"), "{error}");
        assert!(matches!(
            Secret::load(&dir.path().join("missing")),
            Err(SecretError::Read { .. })
        ));
    }
}
