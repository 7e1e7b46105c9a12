//! The node's data directory: its key and its last record, written so that a crash at any
//! moment leaves either the old file or the new one, never a torn one.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// File of the secret key (hex), readable by the owner only.
pub const KEY_FILE: &str = "secret-key";

/// File of the node's last record (`enr:` text): its seq must only ever grow.
pub const RECORD_FILE: &str = "enr";

/// File in which a bootnode writes its record and addresses for users to copy.
pub const BOOTNODE_FILE: &str = "bootnode.txt";

/// A directory holding one node's state.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Opens `path`, creating it (mode 0700) when missing.
    pub fn open(path: &Path) -> io::Result<Self> {
        fs::create_dir_all(path)?;
        let dir = Self {
            path: path.to_path_buf(),
        };
        // Only tighten a directory we own; a shared parent given by the user is their choice.
        let mut perms = fs::metadata(path)?.permissions();
        if perms.mode() & 0o077 != 0 && fs::read_dir(path)?.next().is_none() {
            perms.set_mode(0o700);
            fs::set_permissions(path, perms)?;
        }
        Ok(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in the directory, for messages.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The bytes of `name`, or `None` when it does not exist. Bytes, not text: whether the
    /// content makes sense is the caller's question, so garbage in a file is never mistaken
    /// for a failed read.
    pub fn read(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.path.join(name)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `name` atomically: a temporary file with `mode`, synced, then renamed over the
    /// old one, and the directory synced so the rename itself survives a crash.
    pub fn write_atomic(&self, name: &str, content: &[u8], mode: u32) -> io::Result<()> {
        let tmp = self.path.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // `mode` applies only to a new file; a leftover temporary file may have another one.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, self.path.join(name))?;
        fs::File::open(&self.path)?.sync_all()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_with_the_given_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("d")).unwrap();
        assert_eq!(dir.read("x").unwrap(), None);
        dir.write_atomic("x", b"one", 0o600).unwrap();
        dir.write_atomic("x", b"two", 0o600).unwrap();
        assert_eq!(dir.read("x").unwrap().as_deref(), Some(&b"two"[..]));
        let mode = fs::metadata(dir.path().join("x"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.path().join(".x.tmp").exists());
    }
}
