"""scripts/dogfood-claude.sh, the one-command launcher, run as a user runs it: the real Claude
Code CLI through `fak serve` to a model on the OpenAI wire (the scripted one stands in for
llama-server or LM Studio), `--smoke`, `--install` into a fresh HOME, Ctrl-C, and ShellCheck
over every shell script the project ships."""

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts" / "dogfood-claude.sh"


@pytest.fixture
def launcher(fak_bin, claude_bin, tmp_path):
    """Runs the launcher with a fresh HOME, this build of fak and the pinned Claude Code."""
    home = tmp_path / "home"
    home.mkdir()

    def env_for(model_url=None, **extra):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("ANTHROPIC_", "CLAUDE_", "FAK_DOGFOOD_"))}
        env.update({
            "HOME": str(home),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "FAK_BIN": fak_bin,
            "FAK_DOGFOOD_CLAUDE_BIN": claude_bin,
            "FAK_DOGFOOD_WITNESS_DIR": str(tmp_path / "witness"),
            # Root may skip Claude Code's permission prompts only in a sandbox; this is one.
            "IS_SANDBOX": "1",
        })
        if model_url:
            env.update({"FAK_DOGFOOD_BACKEND": "openai", "FAK_DOGFOOD_BASE_URL": model_url + "/v1"})
        env.update(extra)
        return env

    def run(args, cwd, model_url=None, timeout=180, **extra):
        return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env_for(model_url, **extra),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)

    run.env_for = env_for
    run.home = home
    return run


def witnesses(tmp_path):
    return sorted((tmp_path / "witness").glob("witness-*.json"))


def listening(url):
    host, port = url.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        return True
    except OSError:
        return False


def served_url(stderr):
    for line in stderr.splitlines():
        if "fak serve: listening on " in line:
            return line.split("listening on ")[1].split()[0]
    return None


def tidy_up(tmp_path, scripted_model, last_word):
    """A project with a precious file, and a model that tries to `rm -rf` its folder and to
    list it in one turn, then says `last_word`."""
    project = tmp_path / "project"
    sentinel = project / "sentinel"
    sentinel.mkdir(parents=True)
    (sentinel / "keep.txt").write_text("precious\n")
    model = scripted_model({"turns": [
        {"text": "Cleaning up.", "tool_calls": [
            {"name": "Bash", "input": {"command": "rm -rf sentinel", "description": "clean"}},
            {"name": "Bash", "input": {"command": "ls sentinel", "description": "list"}}]},
        {"text": last_word},
    ]})
    return project, sentinel, model


def test_probe_runs_claude_code_through_fak_and_writes_a_witness(tmp_path, scripted_model, launcher):
    project, sentinel, model = tidy_up(tmp_path, scripted_model, "Done.")
    # No FAK_DOGFOOD_MODEL: the launcher takes the first model the server lists.
    proc = launcher(["--probe", "Tidy up.", "--", "--dangerously-skip-permissions"], project, model.url)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "Done.", proc.stdout
    assert (sentinel / "keep.txt").read_text() == "precious\n", "fak let the rm through"

    [path] = witnesses(tmp_path)
    w = json.loads(path.read_text())
    assert w["witness"] == "fak-dogfood-probe/v1"
    assert w["prompt"] == "Tidy up." and w["backend"] == "openai" and w["model"] == "scripted-model"
    assert w["policy"].endswith("policies/dogfood-claude.fak")
    assert w["claude_exit"] == 0 and w["claude"]["result"] == "Done."
    decided = [(v["kind"], v["tool"], v["verdict"], v["rule"]) for v in w["verdicts"]]
    assert ("decide", "Bash", "DENY", "shell.rm-recursive") in decided, decided
    assert ("decide", "Bash", "ALLOW", "claude-code") in decided, decided
    assert ("admit", "Bash", "ALLOW", "default") in decided, decided
    assert w["counts"] == {"ALLOW": 2, "DENY": 1}, w["counts"]
    # One conversation: every verdict is of Claude Code's session.
    assert {v["trace"] for v in w["verdicts"]} == {w["claude"]["session_id"]}

    # Claude Code ran with the launcher's environment: the model it was told to ask for, its
    # own config directory, and requests that reached the model through fak.
    sent = model.requests("/v1/chat/completions")
    assert sent and all(e["body"]["model"] == "scripted-model" for e in sent)
    config = launcher.home / ".local" / "state" / "fak" / "dogfood" / "claude"
    assert json.loads((config / ".claude.json").read_text())["hasCompletedOnboarding"] is True
    assert not (launcher.home / ".claude.json").exists(), "Claude Code used the user's own config"
    # Everything the launcher started is stopped.
    url = served_url(proc.stderr)
    assert url and not listening(url), proc.stderr

    # A second probe adds a witness of its own run only.
    proc = launcher(["--probe", "Again.", "--", "--dangerously-skip-permissions"], project, model.url)
    assert proc.returncode == 0, proc.stderr
    newest = json.loads(witnesses(tmp_path)[-1].read_text())
    assert len(witnesses(tmp_path)) == 2 and newest["prompt"] == "Again."
    assert min(v["seq"] for v in newest["verdicts"]) > max(v["seq"] for v in w["verdicts"])


def test_policy_none_turns_the_floor_off(tmp_path, scripted_model, launcher):
    project = tmp_path / "project"
    (project / "scratch").mkdir(parents=True)
    model = scripted_model({"turns": [
        {"tool_calls": [{"name": "Bash", "input": {"command": "rm -rf scratch", "description": "x"}}]},
        {"text": "Done."},
    ]})
    proc = launcher(["--probe", "Go.", "--", "--dangerously-skip-permissions"], project, model.url,
                    FAK_DOGFOOD_POLICY="none", FAK_DOGFOOD_MODEL="scripted-model")
    assert proc.returncode == 0, proc.stderr
    [path] = witnesses(tmp_path)
    w = json.loads(path.read_text())
    assert w["policy"].startswith("none")
    assert [(v["verdict"], v["rule"]) for v in w["verdicts"] if v["kind"] == "decide"] == [("ALLOW", "everything")]
    assert not (project / "scratch").exists(), "with the floor off the rm ran"


def test_smoke_takes_a_free_port_when_the_chosen_one_is_busy(tmp_path, scripted_model, launcher):
    model = scripted_model({"side": {"text": "hello from the model"}})
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        proc = launcher(["--smoke"], tmp_path, model.url, FAK_DOGFOOD_PORT=str(port),
                        FAK_DOGFOOD_MODEL="scripted-model", FAK_DOGFOOD_MAX_TOKENS="32")
    finally:
        busy.close()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "port %d is in use" % port in proc.stderr
    url = served_url(proc.stderr)
    assert url and not url.endswith(":%d" % port)
    plain, streamed = proc.stdout.split("event: message_start", 1)
    assert '"text":"hello from the model"' in plain, plain
    deltas = [json.loads(l[6:])["delta"].get("text", "") for l in streamed.splitlines()
              if l.startswith("data: ") and '"content_block_delta"' in l]
    assert "".join(deltas) == "hello from the model", streamed
    assert "event: message_stop" in streamed and "smoke ok" in proc.stderr
    sent = [e["body"] for e in model.requests("/v1/chat/completions")]
    assert [bool(b.get("stream")) for b in sent] == [False, True]
    # The smoke asks for 64 tokens; FAK_DOGFOOD_MAX_TOKENS lowered it on the way.
    assert [b.get("max_completion_tokens", b.get("max_tokens")) for b in sent] == [32, 32], sent


def test_smoke_fails_when_the_model_is_not_there(tmp_path, launcher):
    # A port nothing listens on: the launcher says so instead of starting a useless gateway.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "http://127.0.0.1:%d" % s.getsockname()[1]
    s.close()
    proc = launcher(["--smoke"], tmp_path, dead, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "/v1/models did not answer" in proc.stderr


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_a_signal_stops_what_it_started(tmp_path, scripted_model, launcher, how):
    project = tmp_path / "project"
    project.mkdir()
    # The model thinks for a minute before its call: the signal comes first.
    model = scripted_model({"turns": [
        {"text": "Thinking.", "pause": 60, "tool_calls": [{"name": "Bash", "input": {"command": "ls"}}]}]})
    err = tmp_path / "launcher.err"
    with open(err, "w") as stderr:
        proc = subprocess.Popen(
            [str(SCRIPT), "--probe", "Go.", "--", "--dangerously-skip-permissions"], cwd=project,
            env=launcher.env_for(model.url, FAK_DOGFOOD_MODEL="scripted-model"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
        try:
            deadline = time.time() + 60
            while time.time() < deadline and not model.requests("/v1/chat/completions"):
                time.sleep(0.2)
            url = served_url(err.read_text())
            assert url and listening(url), err.read_text()
            if how == "ctrl-c":
                # What a terminal does: SIGINT to the whole foreground process group.
                os.killpg(proc.pid, signal.SIGINT)
            else:
                # `kill PID` from elsewhere: only the launcher hears it, and stops the rest.
                proc.terminate()
            started = time.time()
            assert proc.wait(timeout=30) != 0
            assert time.time() - started < 15, "the launcher waited for the model instead of stopping"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert not listening(url), "fak serve outlived the launcher"
    # Claude Code's own children get its signal, not the launcher's wait: on a loaded machine
    # they were seen finishing a moment after the launcher (CI, session 24). A few seconds to
    # exit; a process still there after that is left behind.
    deadline = time.time() + 5
    while True:
        left = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if not left or time.time() > deadline:
            break
        time.sleep(0.1)
    shown = subprocess.run(["ps", "-o", "pid,ppid,etime,args", "-s", str(proc.pid)], capture_output=True, text=True).stdout
    assert left == [], "processes of the launcher's session are left:\n%s" % shown


FAKE_CLAUDE = """#!/usr/bin/env bash
# A stand-in for interactive Claude Code: it waits, and on Ctrl-C notes whether fak still answers.
trap 'curl -fsS -o /dev/null "$ANTHROPIC_BASE_URL/healthz" && echo alive >> "$FAKE_OUT"; exit 0' INT
echo "$ANTHROPIC_BASE_URL" > "$FAKE_OUT.url"
while true; do sleep 0.1; done
"""


def test_ctrl_c_in_claude_code_does_not_stop_fak(tmp_path, scripted_model, launcher):
    """Interactive Claude Code reads Ctrl-C itself (once clears the line). The terminal sends
    it to the whole foreground group; the servers the launcher started are in groups of their
    own, so fak still answers. (A stand-in plays Claude Code here: the real one needs a
    terminal, and is run headless by the probe tests.)"""
    fake = tmp_path / "claude"
    fake.write_text(FAKE_CLAUDE)
    fake.chmod(0o755)
    out = tmp_path / "fake.out"
    model = scripted_model({"turns": []})
    env = launcher.env_for(model.url, FAK_DOGFOOD_MODEL="scripted-model", FAK_DOGFOOD_CLAUDE_BIN=str(fake),
                           FAKE_OUT=str(out))
    proc = subprocess.Popen([str(SCRIPT)], cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not Path(str(out) + ".url").exists():
            time.sleep(0.1)
        url = Path(str(out) + ".url").read_text().strip()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert out.read_text().split() == ["alive"], "fak stopped on the Ctrl-C meant for Claude Code"
    assert not listening(url), "fak serve outlived the launcher"


def test_install_into_a_fresh_home(tmp_path, launcher):
    proc = launcher(["--install"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    bin_dir = launcher.home / ".local" / "bin"
    for name in ("fak", "fak-dogfood", "fak-qwen36-claude"):
        assert os.access(bin_dir / name, os.X_OK), name
    assert "is not on your PATH" in proc.stderr
    # The installed programs work from anywhere, with nothing of the test's environment.
    env = {"HOME": str(launcher.home), "PATH": "%s:/usr/bin:/bin" % bin_dir}
    version = subprocess.run(["fak", "--version"], env=env, capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("fak "), version
    decided = subprocess.run(["fak", "preflight", "--tool", "Bash", "--args", '{"command": "rm -rf ~"}'],
                             env=env, capture_output=True, text=True)
    assert decided.stdout.startswith("verdict=DENY reason=POLICY_BLOCK"), decided
    dog = subprocess.run(["fak-dogfood", "--print-env"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert dog.returncode == 0, dog.stderr
    assert "export ANTHROPIC_BASE_URL='http://127.0.0.1:8787'" in dog.stdout
    assert "export ANTHROPIC_MODEL='qwen2.5-coder:7b'" in dog.stdout
    assert "export CLAUDE_CONFIG_DIR='%s/.local/state/fak/dogfood/claude'" % launcher.home in dog.stdout
    qwen = subprocess.run(["fak-qwen36-claude", "--print-env"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert qwen.returncode == 0, qwen.stderr
    assert "export ANTHROPIC_DEFAULT_SONNET_MODEL='lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M'" in qwen.stdout
    assert "export API_TIMEOUT_MS='900000'" in qwen.stdout
    assert "--base-url http://127.0.0.1:8131 " in qwen.stdout
    assert '# FAK_PROVIDER_EXTRA_BODY_JSON={"top_k":20,"chat_template_kwargs":{"preserve_thinking":true}}' in qwen.stdout
    # Installing again replaces what is there.
    assert launcher(["--install"], tmp_path).returncode == 0


def test_print_env_keeps_secrets_and_settings_where_they_belong(tmp_path, launcher):
    # The anthropic backend passes the caller's own key; an account login sends none and keeps
    # Claude Code's own config directory (where the login is).
    proc = launcher(["--print-env"], tmp_path, FAK_DOGFOOD_BACKEND="anthropic", ANTHROPIC_API_KEY="sk-ant-test-1")
    assert "export ANTHROPIC_API_KEY='sk-ant-test-1'" in proc.stdout and "ANTHROPIC_MODEL" not in proc.stdout
    proc = launcher(["--print-env"], tmp_path, FAK_DOGFOOD_BACKEND="anthropic", FAK_DOGFOOD_ACCOUNT="1")
    assert "ANTHROPIC_API_KEY" not in proc.stdout and "CLAUDE_CONFIG_DIR" not in proc.stdout, proc.stdout
    bad = launcher(["--print-env"], tmp_path, FAK_DOGFOOD_BACKEND="llamafile")
    assert bad.returncode == 2 and "unknown backend `llamafile`" in bad.stderr
    bad = launcher(["--probe"], tmp_path)
    assert bad.returncode == 2 and "--probe needs a prompt" in bad.stderr
    help_ = launcher(["--help"], tmp_path)
    assert help_.returncode == 0 and "FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON" in help_.stdout


def shell_scripts():
    found = []
    for path in sorted(ROOT.glob("scripts/*")) + sorted(ROOT.glob("tools/**/*.sh")):
        if path.is_file() and path.read_text(errors="replace").startswith("#!/usr/bin/env bash"):
            found.append(path)
    return found


def test_shell_scripts_pass_shellcheck():
    scripts = shell_scripts()
    assert SCRIPT in scripts and len(scripts) >= 3, scripts
    shellcheck = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "shellcheck"
    if not shellcheck.exists():
        import sys
        shellcheck = Path(sys.executable).parent / "shellcheck"
    out = subprocess.run([str(shellcheck), "--severity=info", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_qwen36_preset_hands_reasoning_back(tmp_path, scripted_model, launcher):
    """--qwen36 against a stand-in for LM Studio: the preset's extra body reaches the model on
    every request, and what the model reasoned comes back to it with the conversation (its
    template's preserve_thinking reads `reasoning_content`)."""
    project = tmp_path / "project"
    project.mkdir()
    model = scripted_model({"turns": [
        {"reasoning": "First I list the files, then I answer.", "text": "Listing.",
         "tool_calls": [{"name": "Bash", "input": {"command": "ls", "description": "list"}}]},
        {"text": "Done."},
    ]})
    proc = launcher(["--qwen36", "--probe", "What is here?", "--", "--dangerously-skip-permissions"], project,
                    FAK_DOGFOOD_BASE_URL=model.url + "/v1", FAK_DOGFOOD_MODEL="scripted-model")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"] == "Done."
    sent = [e["body"] for e in model.requests("/v1/chat/completions") if e["body"].get("tools")]
    assert len(sent) == 2, sent
    for body in sent:
        assert body["top_k"] == 20 and body["chat_template_kwargs"] == {"preserve_thinking": True}, body
    replayed = [m for m in sent[1]["messages"] if m["role"] == "assistant"]
    assert replayed and replayed[0].get("reasoning_content") == "First I list the files, then I answer.", replayed
    w = json.loads(witnesses(tmp_path)[0].read_text())
    assert w["backend"] == "openai" and w["counts"] == {"ALLOW": 2}, w["counts"]


class Tmux:
    """A terminal for an interactive program: tmux on a socket of its own."""

    def __init__(self, tmp_path, command, env):
        self.socket = "fak-test-%d" % os.getpid()
        self.name = "dogfood"
        self.env = env
        subprocess.run(["tmux", "-L", self.socket, "new-session", "-d", "-s", self.name, "-x", "160", "-y", "50",
                        command], env=env, check=True)

    def screen(self):
        return subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def wait_for(self, text, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError("never showed %r; the screen:\n%s" % (text, self.screen()))

    def keys(self, *keys):
        subprocess.run(["tmux", "-L", self.socket, "send-keys", "-t", self.name, *keys], check=True)

    def kill(self):
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def test_interactive_claude_code_through_the_launcher(tmp_path, scripted_model, launcher):
    """The default mode, as a person uses it: the real Claude Code in a terminal, started by
    the launcher with no arguments; the folder trusted, a task typed, fak refusing the rm while
    the ls runs, Ctrl-C (Claude Code's) leaving fak up, /exit stopping everything."""
    project, sentinel, model = tidy_up(tmp_path, scripted_model, "All done here.")
    env = launcher.env_for(model.url)
    env.pop("IS_SANDBOX")  # no permission flags: Claude Code's own defaults
    exit_file = tmp_path / "exit"
    term = Tmux(tmp_path, "cd %s && %s; echo $? > %s" % (project, SCRIPT, exit_file), env)
    try:
        screen = term.wait_for("trust this folder")
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", screen).group(1)
        term.keys("Enter")
        term.wait_for("? for shortcuts")
        term.keys("Tidy up please.")
        term.keys("Enter")
        term.wait_for("All done here.")
        term.keys("C-c")
        time.sleep(1)
        assert listening(url), "Claude Code's Ctrl-C stopped fak"
        term.keys("/exit")
        term.keys("Enter")
        deadline = time.time() + 30
        while time.time() < deadline and not exit_file.exists():
            time.sleep(0.2)
        assert exit_file.exists() and exit_file.read_text().strip() == "0", term.screen()
    finally:
        term.kill()
    assert not listening(url), "fak serve outlived the launcher"
    assert (sentinel / "keep.txt").read_text() == "precious\n"
    last = model.requests("/v1/chat/completions")[-1]["body"]["messages"]
    said = [m.get("content") or "" for m in last if m["role"] == "assistant"]
    assert any("[fak] The tool call `Bash`" in t and "POLICY_BLOCK" in t for t in said), said
    results = [m["content"] for m in last if m["role"] == "tool"]
    assert len(results) == 1 and "keep.txt" in results[0], results


def test_a_failing_claude_code_still_leaves_a_witness(tmp_path, scripted_model, launcher):
    """Whatever Claude Code prints or however it ends, the witness is JSON and says so; the
    prompt goes in as written, quotes, backslashes, control characters and all."""
    fake = tmp_path / "claude"
    fake.write_text('#!/usr/bin/env bash\nprintf \'not json: "%s"\\n\' "$2"\nexit 3\n')
    fake.chmod(0o755)
    model = scripted_model({"turns": []})
    prompt = 'Say "hi" \\ then\n\ttab, bell \a and ünïcode'
    proc = launcher(["--probe", prompt], tmp_path, model.url, FAK_DOGFOOD_MODEL="scripted-model",
                    FAK_DOGFOOD_CLAUDE_BIN=str(fake))
    assert proc.returncode == 3, proc.stderr
    w = json.loads(witnesses(tmp_path)[0].read_text())
    assert w["prompt"] == prompt.replace("\a", ""), w["prompt"]
    assert w["claude_exit"] == 3 and w["claude"].startswith("not json: "), w["claude"]
    assert w["verdicts"] == [] and w["counts"] == {}


def test_the_ollama_backend_reuses_a_running_ollama(tmp_path, scripted_model, launcher):
    model = scripted_model({"ollama_models": ["scripted-model:latest"], "side": {"text": "hi from ollama"}})
    # No `ollama` on PATH: a running server with the model is all the launcher needs.
    proc = launcher(["--smoke"], tmp_path, FAK_DOGFOOD_BASE_URL=model.url, FAK_DOGFOOD_MODEL="scripted-model",
                    PATH="/usr/bin:/bin")
    assert proc.returncode == 0, proc.stderr
    assert "starting ollama" not in proc.stderr and "pulling" not in proc.stderr
    assert "OLLAMA_CONTEXT_LENGTH" in proc.stderr, "the user is told about Ollama's short default window"
    assert model.requests("/api/tags") and len(model.requests("/v1/chat/completions")) == 2


FAKE_OLLAMA = """#!/usr/bin/env bash
# A stand-in for the ollama CLI: `serve` runs the scripted model on OLLAMA_HOST's port,
# `pull` notes what it was asked for.
case $1 in
serve) echo "serve with a context of $OLLAMA_CONTEXT_LENGTH" >> "%(pulls)s"
       exec "%(python)s" "%(scripted)s" --script "%(script)s" --log "%(log)s" --port "${OLLAMA_HOST##*:}" ;;
pull) echo "pull $2 from $OLLAMA_HOST" >> "%(pulls)s" ;;
*) exit 2 ;;
esac
"""


def test_the_ollama_backend_starts_ollama_pulls_the_model_and_stops_it(tmp_path, launcher):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"ollama_models": [], "side": {"text": "hi from a fresh ollama"}}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulls = tmp_path / "pulls"
    (bin_dir / "ollama").write_text(FAKE_OLLAMA % {
        "python": sys.executable, "scripted": ROOT / "tests" / "e2e" / "scripted_model.py", "script": script,
        "log": tmp_path / "requests.jsonl", "pulls": pulls})
    (bin_dir / "ollama").chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = "http://127.0.0.1:%d" % port
    proc = launcher(["--smoke"], tmp_path, FAK_DOGFOOD_BASE_URL=url, FAK_DOGFOOD_MODEL="qwen2.5-coder:7b",
                    PATH="%s:/usr/bin:/bin" % bin_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "starting ollama serve" in proc.stderr and "pulling qwen2.5-coder:7b" in proc.stderr
    # Started with a window Claude Code's prompt fits in, not Ollama's default of 4,096.
    assert pulls.read_text() == "serve with a context of 32768\npull qwen2.5-coder:7b from 127.0.0.1:%d\n" % port
    assert "hi from a fresh ollama" in proc.stdout
    assert not listening(url), "the ollama the launcher started outlived it"


def test_the_ollama_backend_says_what_is_missing(tmp_path, launcher):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = "http://127.0.0.1:%d" % s.getsockname()[1]
    proc = launcher(["--smoke"], tmp_path, FAK_DOGFOOD_BASE_URL=url, PATH="/usr/bin:/bin")
    assert proc.returncode == 2 and "Ollama is not answering at %s" % url in proc.stderr, proc.stderr


def test_the_witness_keeps_only_its_own_conversation(tmp_path, scripted_model, launcher):
    """Another launcher on the same state directory writes audit rows during the run; the
    witness lists the rows of this run's conversation (Claude Code's session id) alone."""
    state = launcher.home / ".local" / "state" / "fak" / "dogfood" / "fak"
    hook = '{"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": "%s"}, ' \
           '"session_id": "%s", "cwd": "/tmp"}'
    fake = tmp_path / "claude"
    fake.write_text("#!/usr/bin/env bash\n"
                    "echo '%s' | \"$FAK_BIN\" hook --state-dir '%s' >/dev/null\n" % (hook % ("ls", "someone-else"), state)
                    + "echo '%s' | \"$FAK_BIN\" hook --state-dir '%s' >/dev/null\n" % (hook % ("rm -rf /", "mine"), state)
                    + "echo '{\"type\":\"result\",\"result\":\"ok\",\"session_id\":\"mine\"}'\n")
    fake.chmod(0o755)
    model = scripted_model({"turns": []})
    proc = launcher(["--probe", "Go."], tmp_path, model.url, FAK_DOGFOOD_MODEL="scripted-model",
                    FAK_DOGFOOD_CLAUDE_BIN=str(fake))
    assert proc.returncode == 0, proc.stderr
    w = json.loads(witnesses(tmp_path)[0].read_text())
    assert [(v["trace"], v["verdict"]) for v in w["verdicts"]] == [("mine", "DENY")], w["verdicts"]
    assert w["counts"] == {"DENY": 1}
