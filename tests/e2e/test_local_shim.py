"""experiments/agent-live/local_shim.py, the OpenAI-compatible server over transformers: the
official `openai` SDK against it, and the official `anthropic` SDK through `fak serve
--provider openai` in front of it.

Nothing is downloaded: the model is a tiny Llama with random weights and a word-level
tokenizer, built here in the shim's venv (target/shim-venv, which has torch). Its answers are
random words; what is tested is the plumbing. The rows of the output layer that belong to the
special tokens are zero, so greedy decoding never picks one (the other logits' maximum is
positive): an answer is plain words, one token each, and runs to its token limit.
"""

import http.client
import json
import os
import subprocess
import sys
import textwrap
import threading

import anthropic
import openai
import pytest

from conftest import ROOT, stop

SHIM_DIR = ROOT / "experiments" / "agent-live"
SHIM_PYTHON = ROOT / "target" / "shim-venv" / "bin" / "python"
# No __pycache__ left in experiments/agent-live, which has no .gitignore.
sys.dont_write_bytecode, _was = True, sys.dont_write_bytecode
sys.path.insert(0, str(SHIM_DIR))
import local_shim  # noqa: E402  (the parsing and rendering helpers import without torch)

sys.dont_write_bytecode = _was

BUILD = textwrap.dedent('''
    import sys
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = sys.argv[1]
    special = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    words = ("system user assistant tool the a of to in on and is it cat dog bird fish tree sky sea sun "
             "moon star rock red blue green big small old new run walk jump look find make list file path "
             "one two three four five yes no here there now").split() + ["w%d" % i for i in range(200)]
    vocab = {t: i for i, t in enumerate(special + words)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>")
    tok.add_tokens(["<tool_call>", "</tool_call>"])
    # ChatML with Hermes tools, the shape of Qwen's template.
    tok.chat_template = (
        "{%- if tools %}<|im_start|>system\\n"
        "{% if messages[0].role == 'system' %}{{ messages[0].content }}\\n{% endif %}"
        "You may call functions:\\n<tools>\\n{% for t in tools %}{{ t | tojson }}\\n{% endfor %}</tools><|im_end|>\\n"
        "{%- elif messages[0].role == 'system' %}<|im_start|>system\\n{{ messages[0].content }}<|im_end|>\\n"
        "{%- endif %}"
        "{%- for m in messages %}"
        "{%- if m.role == 'system' and loop.first %}"
        "{%- elif m.role == 'assistant' %}<|im_start|>assistant\\n{{ m.content or '' }}"
        "{%- for c in m.tool_calls or [] %}<tool_call>"
        "{{ {'name': c.function.name, 'arguments': c.function.arguments} | tojson }}</tool_call>{% endfor %}"
        "<|im_end|>\\n"
        "{%- elif m.role == 'tool' %}<|im_start|>user\\n<tool_response>{{ m.content }}</tool_response><|im_end|>\\n"
        "{%- else %}<|im_start|>{{ m.role }}\\n{{ m.content }}<|im_end|>\\n"
        "{%- endif %}"
        "{%- endfor %}"
        "{%- if add_generation_prompt %}<|im_start|>assistant\\n{% endif %}")
    tok.save_pretrained(out)

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for t in special + ["<tool_call>", "</tool_call>"]:
            model.lm_head.weight[tok.convert_tokens_to_ids(t)] = 0
    model.save_pretrained(out)
''')

TOOLS = [{"type": "function", "function": {"name": "Bash", "description": "run a command",
                                           "parameters": {"type": "object",
                                                          "properties": {"command": {"type": "string"}}}}}]

# One user message renders as `<|im_start|> user the cat is big <|im_end|> <|im_start|> assistant`.
HELLO = [{"role": "user", "content": "the cat is big"}]
HELLO_TOKENS = 9


def shim_env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("HF_TOKEN", None)
    return env


@pytest.fixture(scope="module")
def shim_python():
    if not SHIM_PYTHON.exists():
        pytest.fail("%s not found: scripts/e2e-setup installs it" % SHIM_PYTHON, pytrace=False)
    return str(SHIM_PYTHON)


@pytest.fixture(scope="module")
def tiny_model(shim_python, tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny-model")
    script = d / "build.py"
    script.write_text(BUILD)
    out = d / "model"
    proc = subprocess.run([shim_python, str(script), str(out)], env=shim_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, "building the tiny model failed:\n" + proc.stderr[-3000:]
    return str(out)


class Shim:
    def __init__(self, python, model, directory):
        self.stderr_path = directory / "shim.err"
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [python, str(SHIM_DIR / "local_shim.py"), "--model", model, "--port", "0", "--verbose"],
                stdout=subprocess.PIPE, stderr=err, text=True, env=shim_env())
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.proc.kill()
            raise RuntimeError("the shim did not start: %r\n%s" % (line, self.stderr_path.read_text()[-3000:]))
        self.port = int(line.split()[-1])
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        stop(self.proc)


@pytest.fixture(scope="module")
def shim(shim_python, tiny_model, tmp_path_factory):
    s = Shim(shim_python, tiny_model, tmp_path_factory.mktemp("shim"))
    yield s
    s.stop()


def client(shim):
    return openai.OpenAI(base_url=shim.url + "/v1", api_key="unused", max_retries=0, timeout=60)


def raw(shim, method, path, body=None):
    """Status and parsed JSON of a request sent as bytes, past any SDK's checks."""
    conn = http.client.HTTPConnection("127.0.0.1", shim.port, timeout=30)
    conn.request(method, path, body=body, headers={"content-type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data)


def streamed(shim, **kwargs):
    """Text, finish reasons, tool call deltas and usage of one streamed completion."""
    chunks = list(client(shim).chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                       **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    calls = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    return text, finish, calls, chunks[-1].usage


# --- The helpers, without torch -----------------------------------------------------------------


def test_parse_tool_calls():
    parse = local_shim.parse_tool_calls
    assert parse("just text") == ("just text", [])
    content, calls = parse('Looking.\n<tool_call>\n{"name": "Bash", "arguments": {"command": "ls"}}\n</tool_call>')
    assert content == "Looking.\n"
    assert calls == [{"name": "Bash", "arguments": '{"command": "ls"}'}]
    # Two calls, arguments given as a JSON string, and text between and after them.
    content, calls = parse('<tool_call>{"name": "A", "arguments": "{\\"x\\": 1}"}</tool_call> and '
                           '<tool_call>{"name": "B", "parameters": {}}</tool_call> done')
    assert content == " and  done"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("A", {"x": 1}), ("B", {})]
    # A block left open at the end still counts when its JSON is whole.
    assert parse('<tool_call>{"name": "Read", "arguments": {"path": "a"}}')[1] == [
        {"name": "Read", "arguments": '{"path": "a"}'}]
    # Blocks that hold no readable call stay text.
    for text in ["<tool_call>{oops</tool_call>", '<tool_call>{"arguments": {}}</tool_call>',
                 '<tool_call>{"name": "A", "arguments": [1]}</tool_call>', "<tool_call>"]:
        assert parse(text) == (text, []), text


def test_held_suffix():
    held = local_shim._held_suffix
    assert held("hello <tool", ["<tool_call>"]) == 5
    assert held("hello <", ["<tool_call>", "END"]) == 1
    assert held("hello E", ["<tool_call>", "END"]) == 1
    assert held("hello", ["<tool_call>"]) == 0
    assert held("hello", []) == 0


class FussyTokenizer:
    """A chat template that knows only user and assistant, and ignores tools."""

    def apply_chat_template(self, messages, tools=None, add_generation_prompt=False, tokenize=True):
        for m in messages:
            if m["role"] not in ("user", "assistant", "system"):
                raise ValueError("Conversation roles must be user or assistant")
        return "".join("[%s] %s\n" % (m["role"], m["content"]) for m in messages) + "[assistant] "


def test_render_prompt_falls_back_to_plain_roles():
    messages = local_shim._messages({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "list "}, {"type": "text", "text": "files"}]},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "a.txt"}]})
    text = local_shim.render_prompt(FussyTokenizer(), messages, TOOLS)
    assert text.startswith("[system] be brief\n\nYou may call functions.")
    assert '"name": "Bash"' in text.split("[user]")[0], "the ignored tools are described in the system text"
    assert "[user] list files\n" in text
    assert '[assistant] <tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>\n' in text
    assert "[user] <tool_response>\na.txt\n</tool_response>\n" in text
    assert text.endswith("[assistant] ")


class WordTokenizer(FussyTokenizer):
    """One token a word."""

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": list(range(len(text.split())))}


def test_a_prompt_too_long_is_truncated_or_refused():
    model = local_shim.Model.__new__(local_shim.Model)
    model.tokenizer, model.lock, model.context, model.overflow = WordTokenizer(), threading.Lock(), 100, "truncate"

    def ask(words, max_tokens):
        # `[user] word ... [assistant]`: two tokens more than the words.
        return local_shim.parse_request({"messages": [{"role": "user", "content": "word " * words}],
                                         "max_tokens": max_tokens}, 1000)

    assert model.prepare(ask(200, 10)) == list(range(202 - 90, 202)), "the last 90 tokens, and 10 for the answer"
    assert len(model.prepare(ask(80, 10))) == 82
    assert len(model.prepare(ask(80, 500))) == 50, "the answer's room is at most half the window"
    model.overflow = "refuse"
    assert len(model.prepare(ask(80, 10))) == 82
    with pytest.raises(local_shim.RequestError) as e:
        model.prepare(ask(200, 10))
    assert (e.value.status, e.value.code) == (400, "context_length_exceeded")


def test_request_checks():
    def refused(body):
        with pytest.raises(local_shim.RequestError) as e:
            local_shim.parse_request(body, 64)
        return e.value

    assert refused({}).param == "messages"
    assert refused({"messages": []}).param == "messages"
    assert refused({"messages": [{"role": "wizard", "content": "hi"}]}).param == "messages"
    assert refused({"messages": HELLO, "max_tokens": 0}).param == "max_tokens"
    assert refused({"messages": HELLO, "temperature": "hot"}).param == "temperature"
    assert refused({"messages": HELLO, "stop": 3}).param == "stop"
    assert refused({"messages": HELLO, "n": 2}).param == "n"
    req = local_shim.parse_request({"messages": HELLO, "max_tokens": 1000, "stop": "END", "temperature": 0}, 64)
    assert (req["max_new_tokens"], req["stop"], req["temperature"]) == (64, ["END"], 0.0)
    assert local_shim.parse_request({"messages": HELLO, "max_completion_tokens": 5, "max_tokens": 9}, 64)[
        "max_new_tokens"] == 5


# Model.events with a scripted generate() in place of the model: the text is given out as it
# settles and the calls are read at the end. Runs in the shim's venv (events needs torch).
EVENTS = textwrap.dedent('''
    import json, sys, threading
    import torch
    sys.path.insert(0, sys.argv[1])
    import local_shim

    class Bytes:
        """A tokenizer whose tokens are the bytes of UTF-8."""
        def decode(self, ids, **kwargs):
            return bytes(ids).decode("utf-8", "replace")

    class Scripted:
        """generate(): the prompt, then the script's tokens, stopping as the real one does."""
        script = []
        def generate(self, input_ids, streamer, stopping_criteria, max_new_tokens, **kwargs):
            streamer.put(input_ids)
            out = input_ids
            for t in self.script[:max_new_tokens]:
                out = torch.cat([out, torch.tensor([[t]])], dim=1)
                streamer.put(torch.tensor([t]))
                if t == 0 or any(bool(c(out, None)[0]) for c in stopping_criteria):
                    break
            streamer.end()

    m = local_shim.Model.__new__(local_shim.Model)
    m.torch, m.tokenizer, m.model, m.lock = torch, Bytes(), Scripted(), threading.Lock()
    m.device, m.context, m.eos, m.pad = "cpu", None, {0}, 0
    out = []
    for case in json.load(sys.stdin):
        m.model.script = list(case["text"].encode()) + ([0] if case.get("eos") else [])
        req = local_shim.parse_request(dict({"messages": [{"role": "user", "content": "hi"}]}, **case["ask"]), 256)
        out.append([list(e) for e in m.events(req, [1, 2, 3])])
    print(json.dumps(out))
''')


def test_answer_events_from_a_scripted_generator(shim_python):
    call = '<tool_call>{"name": "Bash", "arguments": {"command": "ls"}}</tool_call>'
    cases = [
        {"text": "Sure.\n" + call, "eos": True, "ask": {"tools": TOOLS}},
        {"text": "Sure.\n" + call, "eos": True, "ask": {}},
        {"text": "Sure.\n" + call, "eos": True, "ask": {"tools": TOOLS, "tool_choice": "none"}},
        {"text": "abcENDxyz", "ask": {"stop": "END"}},
        {"text": "aENbENDc", "eos": True, "ask": {"stop": ["END"]}},
        {"text": "h\u00e9llo w\u00f6rld", "ask": {"max_tokens": 9}},
        {"text": "<tool_call>{oops", "eos": True, "ask": {"tools": TOOLS}},
        {"text": "Sure.\n" + call, "ask": {"tools": TOOLS, "max_tokens": 40}},
    ]
    proc = subprocess.run([shim_python, "-c", EVENTS, str(SHIM_DIR)], input=json.dumps(cases), env=shim_env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)

    def text(events):
        return "".join(e[1] for e in events if e[0] == "text")

    # Text before the call streams; the call is read at the end; the end-of-sequence token counts.
    assert text(out[0]) == "Sure.\n"
    assert out[0][-2:] == [["calls", [{"name": "Bash", "arguments": '{"command": "ls"}'}]],
                           ["done", "tool_calls", 3, len(cases[0]["text"].encode()) + 1]]
    # Without tools (or with tool_choice none) the block is text.
    for events in out[1:3]:
        assert text(events) == "Sure.\n" + call and events[-1][1] == "stop"
    # A stop string ends the answer and the generation: no token after the one that completed it.
    assert text(out[3]) == "abc" and out[3][-1] == ["done", "stop", 3, 6]
    # An end that may begin the stop string waits (above, `E` never went out), and goes out when
    # it turns out not to.
    assert text(out[4]) == "aENb" and out[4][-1][1] == "stop"
    # A character's first byte waits for the rest; one cut off by the token limit ends the text.
    pieces = [e[1] for e in out[5] if e[0] == "text"]
    assert "".join(pieces) == "h\u00e9llo w\ufffd" and all("\ufffd" not in p for p in pieces[:-1])
    assert out[5][-1] == ["done", "length", 3, 9]
    # A block that cannot be read stays text, and so does a call cut off by the token limit.
    assert text(out[6]) == "<tool_call>{oops" and out[6][-1][1] == "stop"
    assert text(out[7]) == ("Sure.\n" + call)[:40] and out[7][-1] == ["done", "length", 3, 40]


# --- The server, through the openai SDK ---------------------------------------------------------


def test_models_and_health(shim, tiny_model):
    assert [m.id for m in client(shim).models.list()] == [tiny_model]
    status, body = raw(shim, "GET", "/healthz")
    assert status == 200 and body["status"] == "ok" and body["device"] == "cpu"


def test_create(shim, tiny_model):
    r = client(shim).chat.completions.create(model="anything", messages=HELLO, max_tokens=8)
    choice = r.choices[0]
    assert r.model == tiny_model
    assert choice.message.role == "assistant" and choice.message.content and not choice.message.tool_calls
    assert choice.finish_reason == "length"
    # One token a word, and the prompt as counted by hand above.
    assert r.usage.completion_tokens == 8 == len(choice.message.content.split(" "))
    assert r.usage.prompt_tokens == HELLO_TOKENS
    assert r.usage.total_tokens == HELLO_TOKENS + 8


def test_stream_equals_create(shim):
    ask = {"model": "m", "messages": HELLO, "max_tokens": 12, "seed": 7}
    whole = client(shim).chat.completions.create(**ask)
    text, finish, calls, usage = streamed(shim, **ask)
    assert text == whole.choices[0].message.content and text
    assert finish == ["length"] and not calls
    assert (usage.prompt_tokens, usage.completion_tokens) == (HELLO_TOKENS, 12)


def test_a_prompt_longer_than_the_window_loses_its_start(shim):
    # The tiny model's window is 2048 tokens; 4 are kept for the answer.
    long = [{"role": "user", "content": "cat " * 3000}]
    r = client(shim).chat.completions.create(model="m", messages=long, max_tokens=4)
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (2044, 4)


def test_max_tokens_limits_the_answer(shim):
    c = client(shim).chat.completions
    assert c.create(model="m", messages=HELLO, max_tokens=3).usage.completion_tokens == 3
    assert c.create(model="m", messages=HELLO, max_completion_tokens=5).usage.completion_tokens == 5


def test_stop_ends_the_answer(shim):
    c = client(shim).chat.completions
    text = c.create(model="m", messages=HELLO, max_tokens=10).choices[0].message.content
    stop = " " + text.split(" ")[3]
    r = c.create(model="m", messages=HELLO, max_tokens=10, stop=[stop, "never-said"])
    assert r.choices[0].message.content == text[:text.index(stop)]
    assert r.choices[0].finish_reason == "stop"
    s_text, s_finish, _, _ = streamed(shim, model="m", messages=HELLO, max_tokens=10, stop=stop)
    assert (s_text, s_finish) == (text[:text.index(stop)], ["stop"])


def test_sampling_with_a_seed_repeats(shim):
    ask = {"model": "m", "messages": HELLO, "max_tokens": 10, "temperature": 1.0, "top_p": 0.9, "seed": 3,
           "extra_body": {"top_k": 50}}
    c = client(shim).chat.completions
    assert c.create(**ask).choices[0].message.content == c.create(**ask).choices[0].message.content


def test_tools_and_tool_messages(shim):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "list the files"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "call_1", "type": "function",
                                 "function": {"name": "Bash", "arguments": '{"command": "ls"}'}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt b.txt"}]
    c = client(shim).chat.completions
    with_tools = c.create(model="m", messages=messages, tools=TOOLS, max_tokens=6)
    without = c.create(model="m", messages=messages, max_tokens=6)
    assert with_tools.choices[0].finish_reason in ("length", "stop", "tool_calls")
    assert with_tools.choices[0].message.content or with_tools.choices[0].message.tool_calls
    assert with_tools.usage.prompt_tokens > without.usage.prompt_tokens, "the template rendered the tools"
    text, finish, _, _ = streamed(shim, model="m", messages=messages, tools=TOOLS, max_tokens=6)
    assert text == (with_tools.choices[0].message.content or "") and finish == [with_tools.choices[0].finish_reason]


def test_errors(shim):
    status, body = raw(shim, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    status, body = raw(shim, "POST", "/v1/chat/completions", b'{"model": "m"}')
    assert status == 400 and body["error"]["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        client(shim).chat.completions.create(model="m", messages=HELLO, max_tokens=-1)
    assert e.value.body["param"] == "max_tokens"
    for method, path in [("GET", "/v1/nope"), ("POST", "/v1/nope")]:
        status, body = raw(shim, method, path, b"{}" if method == "POST" else None)
        assert status == 404 and body["error"]["code"] == "unknown_url"
    # Still answering after all that.
    assert client(shim).chat.completions.create(model="m", messages=HELLO, max_tokens=2).usage.completion_tokens == 2


# --- fak serve in front of it -------------------------------------------------------------------


def test_anthropic_sdk_through_fak(shim, tiny_model, fak_serve, tmp_path):
    gw = fak_serve(shim.url, tmp_path, ["--provider", "openai", "--model", tiny_model])
    c = anthropic.Anthropic(base_url=gw.url, api_key="sk-ant-test-not-a-real-key", max_retries=0, timeout=60)
    ask = {"model": "claude-test", "max_tokens": 8, "messages": HELLO}
    m = c.messages.create(**ask)
    assert [b.type for b in m.content] == ["text"] and m.content[0].text
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 8
    with c.messages.stream(**ask) as s:
        streamed_message = s.get_final_message()
    assert [b.type for b in streamed_message.content] == ["text"]
    assert streamed_message.content[0].text == m.content[0].text


def test_the_launcher_starts_the_shim_and_stops_it(tiny_model, fak_bin, tmp_path):
    """scripts/dogfood-claude.sh's `shim` backend: it starts local_shim.py on a port the shim
    picks, fak in front of it, answers a plain and a streamed /v1/messages, and stops both."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in shim_env().items() if not k.startswith(("ANTHROPIC_", "FAK_DOGFOOD_"))}
    env.update({"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "FAK_BIN": fak_bin,
                "FAK_DOGFOOD_BACKEND": "shim", "FAK_DOGFOOD_MODEL": tiny_model,
                "FAK_DOGFOOD_SHIM_PYTHON": str(SHIM_PYTHON)})
    proc = subprocess.run([str(ROOT / "scripts" / "dogfood-claude.sh"), "--smoke"], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "smoke ok" in proc.stderr and "event: message_stop" in proc.stdout
    logs = list((home / "state" / "fak" / "dogfood" / "logs").glob("shim-*.log.out"))
    assert len(logs) == 1, logs
    port = int(logs[0].read_text().split()[-1])
    import socket
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the shim outlived the launcher"
