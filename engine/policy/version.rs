//! The policy version: a digest of the policy set's contents, plus the git commit when the
//! policy set lives in a git repository. Usage and audit records carry it, so any answer
//! can be traced to the exact policy that produced it.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyVersion {
    /// Hex SHA-256 over every policy file's relative path and contents, in path order.
    pub sha256: String,
    /// The commit checked out in the enclosing git repository, if any.
    pub git_commit: Option<String>,
}

impl PolicyVersion {
    /// Digests `(relative path, contents)` pairs; the caller passes them sorted by path.
    pub fn compute<'a>(files: impl IntoIterator<Item = (&'a Path, &'a [u8])>, root: &Path) -> Self {
        let mut hasher = Sha256::new();
        for (path, contents) in files {
            let name = path.to_string_lossy();
            hasher.update((name.len() as u64).to_be_bytes());
            hasher.update(name.as_bytes());
            hasher.update((contents.len() as u64).to_be_bytes());
            hasher.update(contents);
        }
        let digest = hasher.finalize();
        let mut sha256 = String::with_capacity(64);
        for byte in digest {
            sha256.push_str(&format!("{byte:02x}"));
        }
        PolicyVersion {
            sha256,
            git_commit: git_commit(root),
        }
    }

    /// The first 12 hex digits, for log lines.
    pub fn short(&self) -> &str {
        self.sha256.get(..12).unwrap_or(&self.sha256)
    }
}

impl fmt::Display for PolicyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.short())?;
        if let Some(commit) = &self.git_commit {
            write!(f, " (git {})", commit.get(..12).unwrap_or(commit))?;
        }
        Ok(())
    }
}

/// Reads the checked-out commit from `.git` directly, without running git.
fn git_commit(root: &Path) -> Option<String> {
    let root = root.canonicalize().ok()?;
    let git_dir = root.ancestors().find_map(|dir| {
        let candidate = dir.join(".git");
        if candidate.is_dir() {
            Some(candidate)
        } else if candidate.is_file() {
            // A worktree or submodule: ".git" holds "gitdir: <path>".
            let text = std::fs::read_to_string(&candidate).ok()?;
            let target = text.strip_prefix("gitdir:")?.trim();
            Some(dir.join(target))
        } else {
            None
        }
    })?;
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref:").map(str::trim) else {
        return is_hex_commit(head).then(|| head.to_string());
    };
    // Worktrees keep refs in the common dir.
    let common = std::fs::read_to_string(git_dir.join("commondir"))
        .ok()
        .map(|c| git_dir.join(c.trim()))
        .unwrap_or_else(|| git_dir.clone());
    for dir in [&git_dir, &common] {
        if let Ok(text) = std::fs::read_to_string(dir.join(reference)) {
            let commit = text.trim();
            if is_hex_commit(commit) {
                return Some(commit.to_string());
            }
        }
        if let Ok(packed) = std::fs::read_to_string(dir.join("packed-refs")) {
            for line in packed.lines() {
                if let Some((commit, name)) = line.split_once(' ') {
                    if name == reference && is_hex_commit(commit) {
                        return Some(commit.to_string());
                    }
                }
            }
        }
    }
    None
}

fn is_hex_commit(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_names_and_contents() {
        let root = Path::new("/nonexistent-policy-root");
        let a = PolicyVersion::compute([(Path::new("a.toml"), &b"x"[..])], root);
        let b = PolicyVersion::compute([(Path::new("b.toml"), &b"x"[..])], root);
        let c = PolicyVersion::compute([(Path::new("a.toml"), &b"y"[..])], root);
        assert_ne!(a.sha256, b.sha256);
        assert_ne!(a.sha256, c.sha256);
        assert_eq!(a.sha256.len(), 64);
        assert_eq!(a.git_commit, None);
    }

    #[test]
    fn reads_the_commit_from_a_git_directory() {
        let dir = tempfile::tempdir().unwrap();
        let git = dir.path().join(".git");
        std::fs::create_dir_all(git.join("refs/heads")).unwrap();
        std::fs::write(git.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        let sha = "0123456789abcdef0123456789abcdef01234567";
        std::fs::write(git.join("packed-refs"), format!("# pack-refs\n{sha} refs/heads/main\n")).unwrap();
        let sub = dir.path().join("policy");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(git_commit(&sub).as_deref(), Some(sha));
    }
}
