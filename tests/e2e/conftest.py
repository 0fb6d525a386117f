"""Fixtures of the end-to-end suite: the fak binary, the real clients, the scripted model.

Only the model is scripted (scripted_model.py). fak is the binary cargo built; Claude Code is
the npm package `@anthropic-ai/claude-code` that scripts/test installs into target/e2e/node.
Nothing here reaches the network: every server listens on 127.0.0.1.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def stop(proc, grace=10):
    """Stops a server process: SIGTERM, then SIGKILL after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()


def _binary(env_var, default, how):
    path = Path(os.environ.get(env_var) or default)
    if not path.exists():
        pytest.fail("%s not found at %s: %s (or set %s)" % (path.name, path, how, env_var), pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def fak_bin():
    return _binary("FAK_BIN", ROOT / "target" / "debug" / "fak", "run `cargo build` first")


@pytest.fixture(scope="session")
def claude_bin():
    return _binary("FAK_CLAUDE_BIN", ROOT / "target" / "e2e" / "node" / "node_modules" / ".bin" / "claude",
                   "scripts/test installs Claude Code there")


class ScriptedModel:
    """A running scripted_model.py: its URL and the requests it received."""

    def __init__(self, directory, script):
        self.script_path = directory / "script.json"
        self.log_path = directory / "requests.jsonl"
        self.script_path.write_text(json.dumps(script))
        self.log_path.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "scripted_model.py"), "--script", str(self.script_path),
             "--log", str(self.log_path)],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("the scripted model did not start: %r" % line)
        self.port = int(line.split()[-1])
        self.url = "http://127.0.0.1:%d" % self.port

    def requests(self, path_suffix=None):
        out = []
        for line in self.log_path.read_text().splitlines():
            entry = json.loads(line)
            if path_suffix is None or entry["path"].split("?")[0].endswith(path_suffix):
                out.append(entry)
        return out

    def tool_results(self):
        """Every tool_result block the model was sent, by tool_use_id (the last one seen)."""
        found = {}
        for entry in self.requests("/v1/messages"):
            for message in (entry["body"] or {}).get("messages", []):
                content = message.get("content")
                if not isinstance(content, list):
                    continue
                for block in content:
                    if isinstance(block, dict) and block.get("type") == "tool_result":
                        found[block["tool_use_id"]] = block
        return found

    def stop(self):
        stop(self.proc, 5)


@pytest.fixture
def scripted_model(tmp_path):
    started = []

    def start(script):
        d = tmp_path / ("model%d" % len(started))
        d.mkdir()
        m = ScriptedModel(d, script)
        started.append(m)
        return m

    yield start
    for m in started:
        m.stop()


class FakServe:
    """A running `fak serve` in front of an upstream."""

    def __init__(self, fak_bin, upstream_url, state_dir, workspace, extra_args=(), env=None):
        self.stderr_path = state_dir.parent / ("serve-%s.err" % state_dir.name)
        self.stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [fak_bin, "serve", *(() if "--addr" in extra_args else ("--addr", "127.0.0.1:0")), "--base-url", upstream_url,
             "--state-dir", str(state_dir), "--workspace", str(workspace), *extra_args],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env)
        line = self.proc.stdout.readline()
        if "listening on http://" not in line:
            self.proc.kill()
            raise RuntimeError("fak serve did not start: %r\n%s" % (line, self.stderr_path.read_text()))
        self.url = line.split("listening on ")[1].split()[0].replace("0.0.0.0", "127.0.0.1")

    def log_lines(self):
        # fak serve writes its log every 50 ms (a system call a line cost too much under load).
        time.sleep(0.2)
        return [json.loads(l) for l in self.stderr_path.read_text().splitlines() if l.startswith("{")]

    def stop(self):
        stop(self.proc)
        self.stderr.close()


@pytest.fixture
def fak_serve(fak_bin, tmp_path):
    started = []

    def start(upstream_url, workspace, extra_args=(), env=None):
        state = tmp_path / ("serve-state%d" % len(started))
        s = FakServe(fak_bin, upstream_url, state, workspace, extra_args, env)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


def text_of(content):
    """A tool_result's content as text, whether a string or a list of blocks."""
    if isinstance(content, str):
        return content
    return "".join(b.get("text", "") for b in content or [] if isinstance(b, dict))


@pytest.fixture
def run_claude(claude_bin, tmp_path):
    """Runs Claude Code headless in `project` against `base_url`, isolated from this machine's
    own Claude Code configuration, permissive (so only a hook can stop a call)."""
    home = tmp_path / "claude-home"
    home.mkdir()

    def run(project, base_url, prompt="Do the task.", extra_args=(), timeout=120):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "CLAUDE_"))}
        env.update({
            "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "sk-ant-test-not-a-real-key",
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            # Root may skip permissions only in a sandbox; this is one.
            "IS_SANDBOX": "1",
        })
        args = [claude_bin, "-p", prompt, "--output-format", "json", "--dangerously-skip-permissions",
                *extra_args]
        proc = subprocess.run(args, cwd=project, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)
        assert proc.returncode == 0, "claude failed (%d)\nstdout: %s\nstderr: %s" % (
            proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        return json.loads(proc.stdout)

    return run
