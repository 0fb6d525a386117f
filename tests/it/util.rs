//! Helpers shared by the suites: where the data is, snapshots, and collecting every failing
//! case before failing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use fak::diag::{Diag, Format, Sources};

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A path under `tests/data`.
pub fn data(rel: &str) -> PathBuf {
    root().join("tests/data").join(rel)
}

/// The files in `dir` (not its subdirectories) whose name ends with `.{ext}`, sorted.
pub fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no .{ext} files in {}", dir.display());
    out
}

/// A path relative to the repository root, with `/` separators: what snapshots show.
pub fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

/// The file's name without its extension: the snapshot's name.
pub fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

/// Snapshots `value` as `tests/it/snapshots/<group>/<name>.snap`.
pub fn snapshot(group: &str, name: &str, input: Option<&Path>, value: &str) {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path(format!("snapshots/{group}"));
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    if let Some(p) = input {
        s.set_input_file(p);
    }
    s.bind(|| insta::assert_snapshot!(name.to_string(), value));
}

/// Renders diagnostics as `fak policy --check --error-format plain` does.
pub fn render(diags: &[Diag], sources: &Sources) -> String {
    diags.iter().map(|d| fak::diag::render(d, sources, Format::Plain, false)).collect()
}

/// Runs cases, catching each one's panic, and fails once at the end naming every case that
/// failed.
#[derive(Default)]
pub struct Cases {
    run: usize,
    failed: Vec<String>,
}

impl Cases {
    pub fn new() -> Cases {
        Cases::default()
    }

    pub fn case(&mut self, name: &str, f: impl FnOnce()) {
        self.run += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(f)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_default();
            self.failed.push(format!("{name}: {msg}"));
        }
    }

    /// Records a failure found without a panic.
    pub fn fail(&mut self, name: &str, msg: impl Into<String>) {
        self.failed.push(format!("{name}: {}", msg.into()));
    }

    pub fn count(&mut self) {
        self.run += 1;
    }

    pub fn finish(self, suite: &str) {
        assert!(self.run > 0, "{suite}: no cases ran");
        if !self.failed.is_empty() {
            panic!("{suite}: {} of {} cases failed:\n\n{}", self.failed.len(), self.run, self.failed.join("\n\n"));
        }
    }
}

/// The configuration of a gateway under test: an Anthropic-wire upstream that is never there
/// (port 9), the workspace and state directories given, short timeouts.
pub fn gateway_config(workspace: &Path, state: &Path, policy: Option<PathBuf>, engines: &str) -> fak::gateway::Config {
    use std::time::Duration;
    fak::gateway::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        provider: fak::gateway::Provider::Anthropic,
        extra_body: None,
        base_url: "http://127.0.0.1:9".into(),
        model: None,
        upstream_key: None,
        require_key: None,
        workspace: workspace.to_string_lossy().into_owned(),
        home: "/home/dev".into(),
        state_dir: state.to_path_buf(),
        upstream_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_secs(5),
        body_limit: 1 << 20,
        ping_interval: Duration::from_secs(10),
        max_tokens: None,
        policy,
        watch: false,
        engines: fak::engine::Engines::parse(engines).unwrap(),
    }
}
