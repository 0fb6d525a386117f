"""The official `openai` Python SDK against `fak serve`'s `/v1/chat/completions`, in front of
the scripted model on either wire (`--provider openai` passes chat through, `anthropic`
translates it to Messages and back). Create, stream, tools, tool results, errors, auth."""

import json
import os
import secrets
import string

import openai
import pytest

TOOLS = [{"type": "function", "function": {"name": "Bash", "description": "run a command",
                                           "parameters": {"type": "object",
                                                          "properties": {"command": {"type": "string"}}}}}]

RM_AND_LS = {"turns": [{"text": "On it.", "tool_calls": [
    {"name": "Bash", "input": {"command": "rm -rf ~/"}},
    {"name": "Bash", "input": {"command": "ls -la"}}]}]}


@pytest.fixture(params=["openai", "anthropic"])
def gateway(request, tmp_path, scripted_model, fak_serve):
    def start(script, extra_args=(), env=None):
        model = scripted_model(script)
        gw = fak_serve(model.url, tmp_path, ["--provider", request.param, *extra_args], env=env)
        return model, gw

    start.provider = request.param
    return start


def client(url, key="sk-test-not-a-real-key"):
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def upstream_body(model):
    return (model.requests("/v1/chat/completions") or model.requests("/v1/messages"))[-1]["body"]


def check_adjudicated(content, calls, finish):
    assert content.startswith("On it.") and "[fak] The tool call `Bash`" in content and "POLICY_BLOCK" in content
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [("Bash", {"command": "ls -la"})]
    assert finish == "tool_calls"


def test_create_with_tools(gateway):
    model, gw = gateway(RM_AND_LS)
    r = client(gw.url).chat.completions.create(model="gpt-test", tools=TOOLS,
                                               messages=[{"role": "user", "content": "clean up"}])
    m = r.choices[0].message
    check_adjudicated(m.content, m.tool_calls, r.choices[0].finish_reason)
    fak = r.model_extra["_fak"]
    assert [a["verdict"] for a in fak["admissions"]] == ["DENY", "ALLOW"]


def test_stream_with_tools(gateway):
    model, gw = gateway(RM_AND_LS)
    chunks = list(client(gw.url).chat.completions.create(
        model="gpt-test", tools=TOOLS, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "clean up"}]))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = {}
    for c in chunks:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            slot = calls.setdefault(d.index, {"name": None, "args": ""})
            slot["name"] = slot["name"] or (d.function.name if d.function else None)
            slot["args"] += (d.function.arguments or "") if d.function else ""
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["tool_calls"]
    assert [(v["name"], json.loads(v["args"])) for v in calls.values()] == [("Bash", {"command": "ls -la"})]
    assert "[fak] The tool call `Bash`" in content
    assert chunks[-1].usage is not None, "include_usage: the last chunk carries usage"
    assert upstream_body(model)["stream"] is True


def test_a_secret_in_a_tool_message_never_reaches_the_model(gateway):
    model, gw = gateway({"turns": [{"text": "ok"}, {"text": "noted"}]})
    # A fake token made here, in a known shape (no real credential is ever in the tree).
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    messages = [
        {"role": "user", "content": "print the token"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "env"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "GITHUB_TOKEN=%s\nHOME=/root" % token},
    ]
    r = client(gw.url).chat.completions.create(model="gpt-test", tools=TOOLS, messages=messages)
    assert r.choices[0].message.content == "noted"
    assert token not in model.log_path.read_text()
    assert "quarantined: SECRET_EXFIL" in json.dumps(upstream_body(model)["messages"])
    assert [x["verdict"] for x in r.model_extra["_fak"]["result_admissions"]] == ["QUARANTINE"]


def test_errors_and_auth(gateway):
    env = dict(os.environ, FAK_TEST_GATEWAY_KEY="gw-test-key-not-a-secret")
    model, gw = gateway({"turns": [{"error": {"status": 429, "type": "rate_limit_error", "message": "slow down"}}]},
                        ["--require-key-env", "FAK_TEST_GATEWAY_KEY"], env=env)
    ask = dict(model="gpt-test", tools=TOOLS, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.AuthenticationError):
        client(gw.url, key="wrong").chat.completions.create(**ask)
    with pytest.raises(openai.RateLimitError) as e:
        client(gw.url, key="gw-test-key-not-a-secret").chat.completions.create(**ask)
    assert "slow down" in str(e.value)
