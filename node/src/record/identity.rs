//! The node's one key: a secp256k1 secret that is both its libp2p identity (PeerId) and the
//! signer of its ENR (EIP-778 "v4"), so a record names its PeerId and a PeerId its node id.
//!
//! Created on first start in the data directory (mode 0600) and reused after, so a restart
//! keeps the identity; or made ahead with `peerfind key generate` (to know a bootnode's
//! PeerId before it starts) and read from `--key-file` (a read-only secret, say), never
//! written there.

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
    /// `--key-file` names no file.
    #[error(
        "the key file {path} does not exist (make one with `peerfind key generate --out {path}`)"
    )]
    Missing {
        /// The key file.
        path: String,
    },
    /// `peerfind key generate` would overwrite a key: an identity is never replaced.
    #[error(
        "{path} exists: a key is a node's identity, so it is never overwritten (choose another file)"
    )]
    Exists {
        /// The file asked for.
        path: String,
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
            Some(bytes) => return Self::parse(&bytes).ok_or(IdentityError::Invalid { path }),
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

    /// Loads the key from `path` (`--key-file`), which must exist; nothing is written.
    pub fn load(path: &std::path::Path) -> Result<Self, IdentityError> {
        let shown = path.display().to_string();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(IdentityError::Missing { path: shown });
            }
            Err(source) => {
                return Err(IdentityError::Read {
                    path: shown,
                    source,
                });
            }
        };
        Self::parse(&bytes).ok_or(IdentityError::Invalid { path: shown })
    }

    /// Makes a new key and stores it at `path` (mode 0600), which must not exist.
    pub fn generate(path: &std::path::Path) -> Result<Self, IdentityError> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let shown = path.display().to_string();
        let secret = identity::secp256k1::SecretKey::generate();
        let text = hex::encode(secret.to_bytes());
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => IdentityError::Exists {
                    path: shown.clone(),
                },
                _ => IdentityError::Write {
                    path: shown.clone(),
                    source,
                },
            })?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| IdentityError::Write {
                path: shown.clone(),
                source,
            })?;
        Self::from_secret(secret).ok_or(IdentityError::Invalid { path: shown })
    }

    /// A key from a file's bytes: 64 hex digits, whitespace around them ignored.
    fn parse(bytes: &[u8]) -> Option<Self> {
        let hex = hex::decode(bytes.trim_ascii()).ok()?;
        let secret = identity::secp256k1::SecretKey::try_from_bytes(hex).ok()?;
        Self::from_secret(secret)
    }

    /// The node id its record will have (keccak-256 of the public key, EIP-778 "v4").
    pub fn node_id(&self) -> Option<String> {
        let enr = enr::Enr::builder().build(&self.signing_key).ok()?;
        Some(hex::encode(enr.node_id().raw()))
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
    fn a_generated_key_is_loaded_as_the_same_identity_and_never_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("key.hex");
        let made = Identity::generate(&path).unwrap();
        let loaded = Identity::load(&path).unwrap();
        assert_eq!(made.peer_id(), loaded.peer_id());
        assert_eq!(made.node_id().unwrap().len(), 64);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Identity::generate(&path).unwrap_err();
        assert!(again.to_string().contains("never overwritten"), "{again}");
        assert_eq!(Identity::load(&path).unwrap().peer_id(), made.peer_id());
    }

    #[test]
    fn a_missing_key_file_says_how_to_make_one() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Identity::load(&tmp.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("peerfind key generate"), "{err}");
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
