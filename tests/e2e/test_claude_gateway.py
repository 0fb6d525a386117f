"""The Claude Code CLI pointed at `fak serve` (ANTHROPIC_BASE_URL), which forwards to the
scripted model: every tool call the model proposes is decided before Claude Code sees it, and
every tool result is admitted before the model reads it."""

import json
import secrets
import string

import pytest

from conftest import text_of


def tool_results(model, provider):
    """Every tool result the model was sent, by call id, as text."""
    if provider == "anthropic":
        return {k: text_of(v["content"]) for k, v in model.tool_results().items()}
    found = {}
    for entry in model.requests("/v1/chat/completions"):
        for m in entry["body"]["messages"]:
            if m["role"] == "tool":
                found[m["tool_call_id"]] = m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
    return found


def assistant_texts(model, provider):
    """The text of every assistant turn Claude Code sent back in its last request."""
    if provider == "anthropic":
        last = model.requests("/v1/messages")[-1]["body"]["messages"]
        return [b.get("text", "") for m in last if m["role"] == "assistant" for b in m["content"]]
    last = model.requests("/v1/chat/completions")[-1]["body"]["messages"]
    return [m.get("content") or "" for m in last if m["role"] == "assistant"]


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
def test_claude_code_through_the_gateway(tmp_path, scripted_model, fak_serve, run_claude, provider):
    project = tmp_path / "project"
    sentinel = project / "sentinel"
    sentinel.mkdir(parents=True)
    (sentinel / "keep.txt").write_text("precious\n")
    # A fake token made here, in a known shape (no real credential is ever in the tree).
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    (project / "deploy.env").write_text("GITHUB_TOKEN=%s\n" % token)
    model = scripted_model({"turns": [
        # One turn, two calls: the refused one is replaced by a text block, the other runs.
        {"text": "Cleaning up.", "tool_calls": [
            {"name": "Bash", "input": {"command": "rm -rf %s" % sentinel, "description": "clean"}},
            {"name": "Bash", "input": {"command": "ls %s" % sentinel, "description": "list"}}]},
        {"text": "Reading.", "tool_calls": [
            {"name": "Bash", "input": {"command": "cat deploy.env", "description": "read"}}]},
        {"text": "Done."},
    ]})
    gateway = fak_serve(model.url, project, ["--provider", provider, "--model", "scripted-model"])
    result = run_claude(project, gateway.url)
    assert result["result"] == "Done.", result

    # The refused call never ran; the allowed one did, and its output went back to the model.
    assert (sentinel / "keep.txt").read_text() == "precious\n"
    results = tool_results(model, provider)
    assert "toolu_scripted_0_0" not in results, "a refused call has no result: it never reached Claude Code"
    assert "keep.txt" in results["toolu_scripted_0_1"]
    # What Claude Code kept of the refused call: fak's text, in the assistant turn it sent back.
    said = assistant_texts(model, provider)
    assert any("[fak] The tool call `Bash` (toolu_scripted_0_0) was refused" in t and "POLICY_BLOCK" in t
               for t in said), said

    # The secret never reached the upstream; the model read the page's stub instead.
    assert token not in model.log_path.read_text()
    stub = results["toolu_scripted_1_0"]
    assert "quarantined: SECRET_EXFIL" in stub and "github_pat" in stub, stub

    if provider == "openai":
        sent = model.requests("/v1/chat/completions")
        assert sent and all(e["body"]["model"] == "scripted-model" for e in sent)
        assert not model.requests("/v1/messages"), "an OpenAI-wire upstream only sees chat completions"
    # Claude Code streams every turn; fak logged one line per request, without bodies.
    lines = gateway.log_lines()
    assert [l["route"] for l in lines].count("/v1/messages (stream)") >= 3, lines
    decided = [l for l in lines if "verdicts" in l]
    assert decided[0]["verdicts"] == {"DENY": 1, "ALLOW": 1}, decided[0]
    assert any(l["route"] == "/" and l["status"] == 200 for l in lines), "Claude Code's HEAD / probe"
    assert token not in gateway.stderr_path.read_text()


def test_calls_a_local_model_writes_as_text(tmp_path, scripted_model, fak_serve, run_claude):
    """A local model that writes its calls as `<tool_call>` text: fak lifts them into real
    calls, refuses the rm, and Claude Code runs the ls."""
    project = tmp_path / "project"
    sentinel = project / "sentinel"
    sentinel.mkdir(parents=True)
    (sentinel / "keep.txt").write_text("precious\n")
    call = '<tool_call>{"name": "Bash", "arguments": {"command": "%s"}}</tool_call>'
    model = scripted_model({"turns": [
        {"text": "Cleaning up.\n" + call % ("rm -rf %s" % sentinel) + "\n" + call % ("ls %s" % sentinel)},
        {"text": "Done."},
    ]})
    gateway = fak_serve(model.url, project, ["--provider", "openai", "--model", "scripted-model"])
    result = run_claude(project, gateway.url)
    assert result["result"] == "Done.", result
    assert (sentinel / "keep.txt").read_text() == "precious\n"
    results = tool_results(model, "openai")
    assert len(results) == 1 and "keep.txt" in next(iter(results.values())), results
    assert [l for l in gateway.log_lines() if "verdicts" in l][0]["verdicts"] == {"DENY": 1, "ALLOW": 1}


def test_claude_code_asks_for_less_when_a_local_window_is_full(tmp_path, scripted_model, fak_serve, run_claude):
    """A local server with a 40k window refuses Claude Code's 32,000 output tokens on a 20k
    prompt, in vLLM's words and with a 500. fak says it as Anthropic would, and Claude Code
    retries the same turn asking for what fits."""
    project = tmp_path / "project"
    project.mkdir()
    model = scripted_model({"turns": [{
        "error": {"status": 500, "message": "This model's maximum context length is 40000 tokens. However, you "
                  "requested 52000 tokens (20000 in the messages, 32000 in the completion)."},
        "unless_max_tokens_at_most": 19000, "instead": {"text": "Fits now."}}]})
    gateway = fak_serve(model.url, project, ["--provider", "openai", "--model", "scripted-model"])
    result = run_claude(project, gateway.url)
    assert result["result"] == "Fits now.", result
    asked = [e["body"].get("max_completion_tokens", e["body"].get("max_tokens"))
             for e in model.requests("/v1/chat/completions") if e["body"].get("tools")]
    assert asked[0] > 19000 and asked[-1] == 19000, asked
