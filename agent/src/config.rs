//! The configuration folder: loaded off the serving threads, reloaded when the kernel says a
//! file changed (inotify), applied with partial validity.
//!
//! Loading parses, checks and compiles every object; on a big folder that is seconds of CPU,
//! which must never stall a request. So a dedicated thread waits for file events, lets a burst
//! of them settle, loads, and hands the new Plan to the serving side, which swaps it in. No
//! event, no work: the folder is never re-read on a timer.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use mesh_model::lastgood::{LastGood, LeftOut};
use mesh_model::load::{FileSource, Input, LoadOptions};
use mesh_model::plan::{compile, Plan};
use mesh_model::{rules, Level};
use notify::Watcher;

/// The result of one load of the folder.
pub enum Loaded {
    /// A Plan to serve, with what was left out of it and the findings' counts.
    Plan {
        plan: Box<Plan>,
        left_out: Vec<LeftOut>,
        errors: usize,
        warnings: usize,
    },
    /// Nothing to serve was found (an emptied folder): the last good Plan stays.
    Empty,
}

/// Load the folder with partial validity: what is invalid is left out (its last good version
/// serving), everything else compiles.
pub fn load(dir: &Path, opts: &LoadOptions, last_good: &mut LastGood, allow_empty: bool) -> Loaded {
    let source = FileSource {
        inputs: vec![Input::Path(dir.to_path_buf())],
    };
    let checked = rules::check_partial(&source, opts, Some(last_good));
    let has_objects = checked.snapshot.objects().iter().any(|o| o.known.is_some());
    if !has_objects && checked.errors.is_empty() && !allow_empty {
        return Loaded::Empty;
    }
    let count = |level| checked.findings.iter().filter(|d| d.level == level).count();
    let (errors, warnings) = (count(Level::Error), count(Level::Warning));
    let plan = Box::new(compile(&checked.snapshot));
    last_good.remember(checked.snapshot.objects(), checked.versions);
    Loaded::Plan {
        plan,
        left_out: checked.left_out,
        errors,
        warnings,
    }
}

/// Watch `dir` and call `apply` with each load and when it began reading the folder: one at
/// start, then one per settled burst of file events. Runs until the process ends; meant for
/// its own thread.
pub fn watch(
    dir: PathBuf,
    opts: LoadOptions,
    settle: Duration,
    allow_empty: bool,
    mut apply: impl FnMut(jiff::Timestamp, Loaded),
) {
    let (tx, rx) = mpsc::channel::<()>();
    let on_event = move |event: notify::Result<notify::Event>| {
        // Reads (ours included) are not changes.
        if let Ok(e) = event {
            if matches!(e.kind, notify::EventKind::Access(_)) {
                return;
            }
        }
        let _ = tx.send(());
    };
    // inotify; where the kernel refuses (no instances or watches left), stat polling, which
    // reads metadata only.
    let _watcher: Option<Box<dyn Watcher>> = match notify::recommended_watcher(on_event.clone())
        .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::Recursive).map(|_| w))
    {
        Ok(w) => Some(Box::new(w)),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the folder with inotify; polling its metadata every 2 s instead");
            let config = notify::Config::default().with_poll_interval(Duration::from_secs(2));
            match notify::PollWatcher::new(on_event, config)
                .and_then(|mut w| w.watch(&dir, notify::RecursiveMode::Recursive).map(|_| w))
            {
                Ok(w) => Some(Box::new(w)),
                Err(e) => {
                    tracing::error!(error = %e, dir = %dir.display(), "cannot watch the folder; changes will not be loaded");
                    None
                }
            }
        }
    };
    let mut last_good = LastGood::default();
    loop {
        let started = jiff::Timestamp::now();
        apply(started, load(&dir, &opts, &mut last_good, allow_empty));
        // Wait for a change, then for the burst to settle (an editor or `kubectl cp` writes
        // a file in several steps; a ConfigMap update swaps a symlink).
        if rx.recv().is_err() {
            return;
        }
        while rx.recv_timeout(settle).is_ok() {}
    }
}
