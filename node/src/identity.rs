//! The node's one key: a secp256k1 secret that is both its libp2p identity (PeerId) and the
//! signer of its ENR (EIP-778 "v4"), so a record names its PeerId and a PeerId its node id.
//!
//! Created on first start in the data directory (mode 0600) and reused after, so a restart
//! keeps the identity.

use libp2p::identity::{self, Keypair};
use peerfind_behaviours::enr_ext::SigningKey;

use crate::data_dir::{DataDir, KEY_FILE};

/// Why the key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The key file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte secp256k1 secret in hex.
    #[error("key file {path} does not hold a secp256k1 secret key (64 hex digits)")]
    Invalid {
        /// The key file.
        path: String,
    },
}

/// The node's key in the two forms its libraries want.
#[derive(Clone)]
pub struct Identity {
    /// For libp2p: gives the PeerId and authenticates connections.
    pub keypair: Keypair,
    /// For the ENR: signs the node's record.
    pub signing_key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("Identity")
            .field("peer_id", &self.keypair.public().to_peer_id())
            .finish()
    }
}

impl Identity {
    /// Loads the key from `dir`, or creates and stores a new one when there is none.
    pub fn load_or_create(dir: &DataDir) -> Result<Self, IdentityError> {
        let path = dir.path().join(KEY_FILE).display().to_string();
        let io = |source| IdentityError::Io {
            path: path.clone(),
            source,
        };
        let secret = match dir.read(KEY_FILE).map_err(io)? {
            Some(text) => {
                let bytes = hex::decode(text.trim())
                    .map_err(|_| IdentityError::Invalid { path: path.clone() })?;
                identity::secp256k1::SecretKey::try_from_bytes(bytes)
                    .map_err(|_| IdentityError::Invalid { path: path.clone() })?
            }
            None => {
                let secret = identity::secp256k1::SecretKey::generate();
                let text = hex::encode(secret.to_bytes());
                dir.write_atomic(KEY_FILE, text.as_bytes(), 0o600)
                    .map_err(io)?;
                tracing::info!(path, "created a new node key");
                secret
            }
        };
        Self::from_secret(secret).ok_or(IdentityError::Invalid { path })
    }

    fn from_secret(secret: identity::secp256k1::SecretKey) -> Option<Self> {
        let signing_key = SigningKey::from_slice(&secret.to_bytes()).ok()?;
        let keypair = Keypair::from(identity::secp256k1::Keypair::from(secret));
        Some(Self {
            keypair,
            signing_key,
        })
    }

    /// The node's PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.keypair.public().to_peer_id()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_restart_keeps_the_identity_and_the_key_file_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let first = Identity::load_or_create(&dir).unwrap();
        let second = Identity::load_or_create(&dir).unwrap();
        assert_eq!(first.peer_id(), second.peer_id());
        let mode = std::fs::metadata(tmp.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_key_file_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.write_atomic(KEY_FILE, b"not hex", 0o600).unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(
            err.to_string()
                .contains("does not hold a secp256k1 secret key"),
            "{err}"
        );
    }
}
