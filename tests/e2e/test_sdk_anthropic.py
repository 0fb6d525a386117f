"""The official `anthropic` Python SDK against `fak serve`, in front of the scripted model on
either wire (`--provider anthropic` and `openai`). Create, stream, tools, tool results,
errors, both auth headers."""

import os
import secrets
import string

import anthropic
import pytest

TOOLS = [{"name": "Bash", "description": "run a command",
          "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                           "required": ["command"]}}]

RM_AND_LS = {"turns": [{"text": "On it.", "tool_calls": [
    {"name": "Bash", "input": {"command": "rm -rf ~/"}},
    {"name": "Bash", "input": {"command": "ls -la"}}]}]}


@pytest.fixture(params=["anthropic", "openai"])
def gateway(request, tmp_path, scripted_model, fak_serve):
    """Starts the scripted model with a script and fak serve in front of it, on one wire."""

    def start(script, extra_args=(), env=None):
        model = scripted_model(script)
        gw = fak_serve(model.url, tmp_path, ["--provider", request.param, *extra_args], env=env)
        return model, gw

    start.provider = request.param
    return start


def sent_messages(model):
    """The last request's body as the scripted model got it, on whichever wire."""
    return (model.requests("/v1/messages") or model.requests("/v1/chat/completions"))[-1]["body"]


def client(url, **kw):
    kw.setdefault("api_key", "sk-ant-test-not-a-real-key")
    return anthropic.Anthropic(base_url=url, max_retries=0, timeout=30, **kw)


def fak_of(message):
    extra = message.model_extra or {}
    assert "_fak" in extra, message
    return extra["_fak"]


def check_adjudicated(message):
    kinds = [b.type for b in message.content]
    assert kinds == ["text", "text", "tool_use"], kinds
    assert message.content[1].text.startswith("[fak] The tool call `Bash`")
    assert "POLICY_BLOCK" in message.content[1].text
    assert message.content[2].name == "Bash" and message.content[2].input == {"command": "ls -la"}
    assert message.stop_reason == "tool_use"


def test_create_with_tools(gateway):
    model, gw = gateway(RM_AND_LS)
    msg = client(gw.url).messages.create(model="claude-test", max_tokens=100, tools=TOOLS,
                                         messages=[{"role": "user", "content": "clean up"}])
    check_adjudicated(msg)
    fak = fak_of(msg)
    assert [(a["verdict"], a["by"]) for a in fak["admissions"]] == [("DENY", "shell.rm-recursive"),
                                                                   ("ALLOW", "claude-code")]


def test_stream_with_tools(gateway):
    model, gw = gateway(RM_AND_LS)
    with client(gw.url).messages.stream(model="claude-test", max_tokens=100, tools=TOOLS,
                                        messages=[{"role": "user", "content": "clean up"}]) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    check_adjudicated(final)
    assert events.count("message_stop") == 1 and events[0] == "message_start"
    assert sent_messages(model)["stream"] is True


def test_a_secret_in_a_tool_result_never_reaches_the_model(gateway):
    model, gw = gateway({"turns": [{"text": "ok"}, {"text": "noted"}]})
    # A fake key made here, in a known shape (no real credential is ever in the tree).
    key = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(16))
    secret = "".join(secrets.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))
    leaked = "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n" % (key, secret)
    messages = [
        {"role": "user", "content": "show me the credentials"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash",
                                           "input": {"command": "cat ~/.aws/credentials"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": leaked}]},
    ]
    msg = client(gw.url).messages.create(model="claude-test", max_tokens=100, tools=TOOLS, messages=messages)
    assert msg.content[0].text == "noted"
    assert key not in model.log_path.read_text() and secret not in model.log_path.read_text()
    sent = sent_messages(model)["messages"]
    result = sent[2]["content"][0]["content"] if gateway.provider == "anthropic" else sent[2]["content"]
    assert result.startswith("[fak: this tool result was quarantined: SECRET_EXFIL"), sent
    held = fak_of(msg)["result_admissions"]
    assert [(r["tool"], r["verdict"]) for r in held] == [("Bash", "QUARANTINE")], held


def test_errors_come_back_as_the_sdk_types(gateway):
    model, gw = gateway({"turns": [
        {"error": {"status": 529, "type": "overloaded_error", "message": "Overloaded (scripted)"}}]})
    with pytest.raises(anthropic.APIStatusError) as e:
        client(gw.url).messages.create(model="claude-test", max_tokens=10, tools=TOOLS,
                                       messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 529 and "Overloaded (scripted)" in str(e.value)
    with pytest.raises(anthropic.BadRequestError):
        client(gw.url).post("/v1/messages", body=[1], cast_to=object)


def test_both_auth_headers(gateway):
    env = dict(os.environ, FAK_TEST_GATEWAY_KEY="gw-test-key-not-a-secret")
    model, gw = gateway({"turns": [{"text": "hello"}]}, ["--require-key-env", "FAK_TEST_GATEWAY_KEY"], env=env)
    ask = dict(model="claude-test", max_tokens=10, tools=TOOLS, messages=[{"role": "user", "content": "hi"}])
    # api_key: what this SDK sends for it (x-api-key or Bearer, by major version); auth_token: Bearer.
    for c in [client(gw.url, api_key="gw-test-key-not-a-secret"),
              anthropic.Anthropic(base_url=gw.url, auth_token="gw-test-key-not-a-secret", api_key=None,
                                  max_retries=0)]:
        assert c.messages.create(**ask).content[0].text == "hello"
    with pytest.raises(anthropic.AuthenticationError):
        client(gw.url, api_key="wrong").messages.create(**ask)


def test_thinking_comes_through_on_both_wires(gateway):
    """An Anthropic upstream's thinking block passes with its signature; an OpenAI upstream's
    `reasoning_content` becomes a thinking block (with an empty signature: fak forges none)."""
    model, gw = gateway({"turns": [{"reasoning": "The user wants a listing of the tree.", "text": "Listing.",
                                    "tool_calls": [{"name": "Bash", "input": {"command": "ls"}}]}]})
    ask = dict(model="claude-test", max_tokens=100, tools=TOOLS, messages=[{"role": "user", "content": "list"}])
    c = client(gw.url)
    with c.messages.stream(**ask) as s:
        streamed = s.get_final_message()
    for msg in [c.messages.create(**ask), streamed]:
        assert [b.type for b in msg.content] == ["thinking", "text", "tool_use"], msg.content
        assert msg.content[0].thinking == "The user wants a listing of the tree."
        want = "scripted-signature" if gateway.provider == "anthropic" else ""
        assert msg.content[0].signature == want


def test_a_stream_answered_whole_still_streams(gateway):
    """An upstream that answers a streaming request with one JSON body: the client still gets
    the stream it asked for, adjudicated."""
    script = {"turns": [dict(RM_AND_LS["turns"][0], whole=True)]}
    model, gw = gateway(script)
    with client(gw.url).messages.stream(model="claude-test", max_tokens=100, tools=TOOLS,
                                        messages=[{"role": "user", "content": "clean up"}]) as s:
        final = s.get_final_message()
    check_adjudicated(final)
