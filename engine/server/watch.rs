//! Reload when policy files change.
//!
//! Watches policies/ and catalogue/ recursively, and the root itself so a directory that
//! is replaced wholesale (git checkout, rsync) is noticed. Events are debounced; watches are
//! re-added after every burst because editors that save by rename, and directories that
//! are recreated, leave inotify watching a dead inode.

use super::state::{GatewayState, Trigger};
use crate::policy::{CATALOGUE_DIR, POLICIES_DIR};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Quiet time after the last event before reloading: long enough to cover an editor's
/// write-rename-chmod sequence or a `git checkout` of many files.
const DEBOUNCE: Duration = Duration::from_millis(250);
/// Wait before trying to recreate a watcher that failed.
const RETRY: Duration = Duration::from_secs(2);

/// Policy file changes, watched from before the first load so no edit is missed.
pub struct Changes {
    root: PathBuf,
    tx: mpsc::UnboundedSender<()>,
    rx: mpsc::UnboundedReceiver<()>,
    watcher: Option<RecommendedWatcher>,
}

impl Changes {
    /// Starts watching `root` now; events queue until `run` consumes them.
    pub fn watch(root: &Path) -> Changes {
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        let watcher = start_watcher(root, tx.clone());
        Changes {
            root: root.to_path_buf(),
            tx,
            rx,
            watcher,
        }
    }
}

pub async fn run(state: Arc<GatewayState>, changes: Changes, mut stop: watch::Receiver<bool>) {
    let Changes {
        root,
        tx,
        mut rx,
        mut watcher,
    } = changes;
    loop {
        if watcher.is_none() {
            watcher = start_watcher(&root, tx.clone());
            if watcher.is_none() {
                tokio::select! {
                    _ = tokio::time::sleep(RETRY) => continue,
                    _ = stop.changed() => return,
                }
            }
        }
        tokio::select! {
            event = rx.recv() => if event.is_none() { return },
            _ = stop.changed() => return,
        }
        // Debounce: wait until the files have been quiet for a moment.
        loop {
            tokio::select! {
                more = rx.recv() => if more.is_none() { return },
                _ = tokio::time::sleep(DEBOUNCE) => break,
                _ = stop.changed() => return,
            }
        }
        if let Some(w) = watcher.as_mut() {
            if rewatch(w, &root).is_err() {
                watcher = None;
            }
        }
        state.reload(Trigger::Watch).await;
    }
}

fn start_watcher(root: &Path, tx: mpsc::UnboundedSender<()>) -> Option<RecommendedWatcher> {
    let policy_dirs = [root.join(POLICIES_DIR), root.join(CATALOGUE_DIR)];
    let relevant = policy_dirs.clone();
    let handler = move |result: notify::Result<notify::Event>| {
        let Ok(event) = result else {
            // The watcher lost events (queue overflow): reload to be safe.
            let _ = tx.send(());
            return;
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event
            .paths
            .iter()
            .any(|p| relevant.iter().any(|dir| p.starts_with(dir)))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(error) => {
            tracing::warn!(%error, "cannot watch policy files; reload with SIGHUP or POST /admin/reload");
            return None;
        }
    };
    match rewatch(&mut watcher, root) {
        Ok(()) => Some(watcher),
        Err(error) => {
            tracing::warn!(%error, "cannot watch policy files; will retry");
            None
        }
    }
}

fn rewatch(watcher: &mut RecommendedWatcher, root: &Path) -> notify::Result<()> {
    let dirs: [PathBuf; 2] = [root.join(POLICIES_DIR), root.join(CATALOGUE_DIR)];
    let _ = watcher.unwatch(root);
    watcher.watch(root, RecursiveMode::NonRecursive)?;
    for dir in dirs {
        let _ = watcher.unwatch(&dir);
        if dir.is_dir() {
            watcher.watch(&dir, RecursiveMode::Recursive)?;
        }
    }
    Ok(())
}
