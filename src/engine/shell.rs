//! The `shell` engine: Bash commands in the workspace.
//!
//! `bash -c COMMAND` (or `sh` where there is no bash) in its own process group, the workspace
//! as working directory, stdin closed, and an environment of a few fixed variables — none of
//! the server's own (its keys stay its own). Past the time limit the whole group gets SIGKILL,
//! so a command's children die with it. stdout and stderr are read to their end (a child
//! never blocks on a full pipe) and at most the cap of each is kept. Resource limits set in the
//! child before it runs the shell, inherited by everything it starts: no file written past
//! `file_bytes` (the write fails, the writer gets SIGXFSZ), no core dumps, and no more CPU
//! seconds than the time limit (a process that left the group still stops).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use super::{capped, Output};

/// The environment a command gets.
fn environment(home: &str) -> [(&'static str, String); 5] {
    [
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin".to_string()),
        // The home the decision placed `~` in: the command must find the same files there.
        ("HOME", home.to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("TERM", "dumb".to_string()),
        ("FAK_ENGINE", "shell".to_string()),
    ]
}

fn shell_program() -> &'static str {
    if std::path::Path::new("/bin/bash").exists() || std::path::Path::new("/usr/bin/bash").exists() {
        "bash"
    } else {
        "sh"
    }
}

/// Reads a pipe to its end, keeping at most `cap` bytes.
async fn drain<R: tokio::io::AsyncRead + Unpin>(r: Option<R>, cap: usize) -> (Vec<u8>, usize) {
    let Some(mut r) = r else { return (Vec::new(), 0) };
    let mut kept = Vec::new();
    let mut total = 0usize;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                total += n;
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(buf.get(..n.min(room)).unwrap_or_default());
            }
        }
    }
    (kept, total)
}

/// The limits of a command and of every process it starts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock time, and CPU seconds of each process.
    pub timeout: Duration,
    /// The most bytes kept of stdout, and of stderr.
    pub output_cap: usize,
    /// The largest file a process may write (RLIMIT_FSIZE).
    pub file_bytes: u64,
}

/// Runs `command` in `workspace`.
pub async fn run(workspace: &str, home: &str, command: &str, limits: Limits) -> Output {
    let Limits { timeout, output_cap: cap, file_bytes } = limits;
    let cpu = timeout.as_secs().saturating_add(1);
    let mut cmd = tokio::process::Command::new(shell_program());
    cmd.arg("-c")
        .arg(command)
        .current_dir(workspace)
        .env_clear()
        .envs(environment(home))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe work is allowed: it makes three setrlimit system calls through rustix
    // (no allocation, no lock) and touches nothing but its own copied integers.
    unsafe {
        cmd.pre_exec(move || {
            use rustix::process::{setrlimit, Resource, Rlimit};
            let cap = |n: u64| Rlimit { current: Some(n), maximum: Some(n) };
            setrlimit(Resource::Fsize, cap(file_bytes))?;
            setrlimit(Resource::Core, cap(0))?;
            setrlimit(Resource::Cpu, cap(cpu))?;
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Output::error(format!("the command could not be started: {e}")),
    };
    let pid = child.id();
    let out = drain(child.stdout.take(), cap);
    let err = drain(child.stderr.take(), cap);
    let all = async { tokio::join!(out, err, child.wait()) };
    let ((stdout, out_total), (stderr, err_total), status) = match tokio::time::timeout(timeout, all).await {
        Ok(r) => r,
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            return Output::error(format!(
                "the command was stopped after {} s (its process group killed)",
                timeout.as_secs_f64()
            ));
        }
    };
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    if out_total > stdout.len() {
        text.push_str(&format!("\n[fak: stdout cut at {} of {out_total} bytes]", stdout.len()));
    }
    if !stderr.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(&stderr));
        if err_total > stderr.len() {
            text.push_str(&format!("\n[fak: stderr cut at {} of {err_total} bytes]", stderr.len()));
        }
    }
    match status {
        Ok(s) if s.success() => Output::ok(capped(text, cap * 2)),
        Ok(s) => {
            let code = s.code().map_or_else(|| "a signal".to_string(), |c| c.to_string());
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("[exit status {code}]"));
            Output::error(capped(text, cap * 2))
        }
        Err(e) => Output::error(format!("the command could not be waited for: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    fn limits(ms: u64, output_cap: usize) -> Limits {
        Limits { timeout: Duration::from_millis(ms), output_cap, file_bytes: 1 << 30 }
    }

    #[test]
    fn a_command_runs_in_the_workspace_with_a_scrubbed_environment() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().to_string_lossy().into_owned();
        std::env::set_var("FAK_TEST_SECRET_ENV", "leaked");
        let o = rt().block_on(run(&ws, "/home/u", "pwd; echo \"[$FAK_TEST_SECRET_ENV]\" $HOME", limits(10_000, 1024)));
        assert!(!o.is_error, "{o:?}");
        let real = std::fs::canonicalize(&ws).unwrap();
        assert_eq!(o.text, format!("{}\n[] /home/u\n", real.display()));
        let o = rt().block_on(run(&ws, "/", "echo oops >&2; exit 3", limits(10_000, 1024)));
        assert!(o.is_error);
        assert_eq!(o.text, "oops\n[exit status 3]");
    }

    #[test]
    fn a_command_past_its_time_is_killed_with_its_children() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().to_string_lossy().into_owned();
        let marker = d.path().join("survived");
        let script = format!("(sleep 1; touch {}) & sleep 30", marker.display());
        let started = std::time::Instant::now();
        let o = rt().block_on(run(&ws, "/", &script, limits(300, 1024)));
        assert!(o.is_error && o.text.contains("stopped after 0.3 s"), "{o:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(1500));
        assert!(!marker.exists(), "the background child was killed with its group");
    }

    #[test]
    fn output_past_the_cap_is_counted_not_kept() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().to_string_lossy().into_owned();
        let o = rt().block_on(run(&ws, "/", "head -c 100000 /dev/zero | tr '\\0' x", limits(10_000, 1000)));
        assert!(!o.is_error);
        assert!(o.text.starts_with(&"x".repeat(1000)));
        assert!(o.text.contains("[fak: stdout cut at 1000 of 100000 bytes]"), "{}", &o.text[1000..]);
    }

    #[test]
    fn no_file_grows_past_the_limit_and_no_core_is_dumped() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().to_string_lossy().into_owned();
        let small = Limits { file_bytes: 64 * 1024, ..limits(10_000, 4096) };
        // A child of a child, as `bash -c` and a pipeline make: the limit is inherited.
        let o = rt().block_on(run(&ws, "/", "head -c 1000000 /dev/zero | cat > big; echo done; ulimit -c", small));
        let size = std::fs::metadata(d.path().join("big")).unwrap().len();
        assert_eq!(size, 64 * 1024, "{o:?}");
        assert!(o.text.contains("done\n0\n"), "{o:?}");
        // Under the limit, a file is written whole.
        let o = rt().block_on(run(&ws, "/", "head -c 1000 /dev/zero > ok", small));
        assert!(!o.is_error, "{o:?}");
        assert_eq!(std::fs::metadata(d.path().join("ok")).unwrap().len(), 1000);
    }
}
