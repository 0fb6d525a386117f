"""The Claude Code CLI pointed at `fak serve` (ANTHROPIC_BASE_URL), which forwards to the
scripted model: every tool call the model proposes is decided before Claude Code sees it, and
every tool result is admitted before the model reads it."""

import secrets
import string

from conftest import text_of


def test_claude_code_through_the_gateway(tmp_path, scripted_model, fak_serve, run_claude):
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
    gateway = fak_serve(model.url, project)
    result = run_claude(project, gateway.url)
    assert result["result"] == "Done.", result

    # The refused call never ran; the allowed one did, and its output went back to the model.
    assert (sentinel / "keep.txt").read_text() == "precious\n"
    results = model.tool_results()
    assert "toolu_scripted_0_0" not in results, "a refused call has no result: it never reached Claude Code"
    assert "keep.txt" in text_of(results["toolu_scripted_0_1"]["content"])
    # What Claude Code kept of the refused call: fak's text, in the assistant turn it sent back.
    second = model.requests("/v1/messages")[-1]["body"]["messages"]
    said = [b.get("text", "") for m in second if m["role"] == "assistant" for b in m["content"]]
    assert any("[fak] The tool call `Bash` (toolu_scripted_0_0) was refused" in t and "POLICY_BLOCK" in t
               for t in said), said

    # The secret never reached the upstream; the model read the page's stub instead.
    assert token not in model.log_path.read_text()
    stub = text_of(results["toolu_scripted_1_0"]["content"])
    assert "quarantined: SECRET_EXFIL" in stub and "github_pat" in stub, stub

    # Claude Code streams every turn; fak logged one line per request, without bodies.
    lines = gateway.log_lines()
    assert [l["route"] for l in lines].count("/v1/messages (stream)") >= 3, lines
    assert lines[0]["verdicts"] == {"DENY": 1, "ALLOW": 1}, lines[0]
    assert token not in gateway.stderr_path.read_text()
