//! The node's one key: a secp256k1 secret that is both its libp2p identity (PeerId) and the
//! signer of its ENR (EIP-778 "v4"), so a record names its PeerId and a PeerId its node id.
//!
//! Created on first start in the data directory (mode 0600) and reused after, so a restart
//! keeps the identity.

use libp2p::identity::{self, Keypair};
use peerfind_behaviours::enr_ext::SigningKey;

use crate::record::data_dir::{DataDir, KEY_FILE};

/// Why the key could not be loaded or created: one variant per cause, each naming the file and
/// what to do. The key is the node's identity (its PeerId and node id), so unlike the record it
/// is never replaced behind the operator's back.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The key file exists but could not be read.
    #[error("cannot read the key file {path}: {source} (check its owner and permissions)")]
    Read {
        /// The key file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A new key could not be stored.
    #[error("cannot write the new key file {path}: {source} (is the data directory writable?)")]
    Write {
        /// The key file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte secp256k1 secret in hex.
    #[error(
        "the key file {path} does not hold a secp256k1 secret key (64 hex digits): restore it \
         from a backup, or move it away to start as a new node with a new PeerId"
    )]
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
        let path = dir.file(KEY_FILE).display().to_string();
        let read = dir.read(KEY_FILE).map_err(|source| IdentityError::Read {
            path: path.clone(),
            source,
        })?;
        let secret = match read {
            Some(bytes) => {
                let invalid = || IdentityError::Invalid { path: path.clone() };
                let hex = hex::decode(bytes.trim_ascii()).map_err(|_| invalid())?;
                identity::secp256k1::SecretKey::try_from_bytes(hex).map_err(|_| invalid())?
            }
            None => {
                let secret = identity::secp256k1::SecretKey::generate();
                let text = hex::encode(secret.to_bytes());
                dir.write_atomic(KEY_FILE, text.as_bytes(), 0o600)
                    .map_err(|source| IdentityError::Write {
                        path: path.clone(),
                        source,
                    })?;
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

    #[test]
    fn binary_garbage_in_the_key_file_is_the_same_refusal_naming_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        dir.write_atomic(KEY_FILE, &[0xff, 0xfe, 0x00, 0x80], 0o600)
            .unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(matches!(err, IdentityError::Invalid { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&dir.file(KEY_FILE).display().to_string()),
            "{text}"
        );
        assert!(text.contains("move it away"), "{text}");
        // Nothing was overwritten: the operator decides what happens to the identity.
        assert_eq!(
            dir.read(KEY_FILE).unwrap().as_deref(),
            Some(&[0xff, 0xfe, 0x00, 0x80][..])
        );
    }

    #[test]
    fn a_key_file_that_cannot_be_read_is_a_read_error_not_invalid() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        // A directory where the file should be: reading it fails whoever runs the test.
        std::fs::create_dir(dir.file(KEY_FILE)).unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(matches!(err, IdentityError::Read { .. }), "{err}");
        assert!(
            err.to_string().contains("cannot read the key file"),
            "{err}"
        );
    }
}
