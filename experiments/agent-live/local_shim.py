#!/usr/bin/env python3
"""An OpenAI-compatible server over a Hugging Face transformers model, for machines without
Ollama: `fak serve --provider openai` in front of it runs Claude Code on a small local model.

    python local_shim.py --model HuggingFaceTB/SmolLM2-135M-Instruct --port 8000

loads the model and tokenizer (a hub id or a local directory), then prints `listening on PORT`
once it accepts connections (port 0 picks a free one).

Routes: `GET /v1/models`, `GET /healthz`, `POST /v1/chat/completions` (streaming and not; the
`/v1` prefix may be left out). Messages of every role are rendered through the tokenizer's chat
template, with the request's tools. Calls the model writes as Hermes blocks,
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, come back as OpenAI `tool_calls`
when the request declared tools. The request's `model` is ignored: one model is served.

Only the standard library is imported at the top, so the parsing and rendering helpers can be
imported (and tested) where torch is not installed; `Model` imports torch and transformers.
"""

import argparse
import json
import logging
import queue
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
TOOL_OPEN = "<tool_call>"
TOOL_CLOSE = "</tool_call>"

log = logging.getLogger("local_shim")


class RequestError(Exception):
    """A request the shim refuses: its status and OpenAI error fields."""

    def __init__(self, message, param=None, code=None, status=400, kind="invalid_request_error"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.kind = kind

    def envelope(self):
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# --- Tool calls written as text --------------------------------------------------------------

_BLOCK = re.compile(re.escape(TOOL_OPEN) + r"(.*?)(?:" + re.escape(TOOL_CLOSE) + r"|\Z)", re.DOTALL)


def _call_of(text):
    """The call one block holds, `{"name", "arguments"}` with the arguments as a JSON string, or
    None when it holds none (the block then stays text)."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if not isinstance(v, dict) or not isinstance(v.get("name"), str) or not v["name"]:
        return None
    args = v.get("arguments", v.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            return None
    if not isinstance(args, dict):
        return None
    return {"name": v["name"], "arguments": json.dumps(args)}


def parse_tool_calls(text):
    """Splits a model's text into `(content, calls)`: `calls` are the readable Hermes blocks, in
    order, each `{"name", "arguments"}` (arguments a JSON string); `content` is the text with
    those blocks cut out, untrimmed. A block left open at the end (the model stopped before
    `</tool_call>`) counts when its JSON is whole; a block whose JSON cannot be read stays text."""
    calls = []
    kept = []
    at = 0
    for m in _BLOCK.finditer(text):
        call = _call_of(m.group(1).strip())
        if call is None:
            continue
        kept.append(text[at:m.start()])
        calls.append(call)
        at = m.end()
    kept.append(text[at:])
    return "".join(kept), calls


def _held_suffix(text, markers):
    """How many characters at the end of `text` could begin one of `markers`: a streamed text
    keeps them back until the next token tells."""
    longest = max((len(m) for m in markers), default=0)
    for k in range(min(len(text), longest - 1), 0, -1):
        tail = text[-k:]
        if any(m.startswith(tail) for m in markers):
            return k
    return 0


# --- Requests --------------------------------------------------------------------------------


def _text_of(content, where):
    """A message's content as a string: a string, null, or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict) and part.get("type") in ("text", "input_text") and isinstance(part.get("text"), str):
                out.append(part["text"])
            else:
                raise RequestError("%s: only text content parts are supported" % where, "messages")
        return "".join(out)
    raise RequestError("%s: content must be a string or a list of text parts" % where, "messages")


def _messages(body):
    """The request's messages as chat templates take them: string contents, assistant tool calls
    with their arguments as objects (the form transformers documents for templates)."""
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise RequestError("`messages` must be a non-empty list", "messages", "missing_required_parameter")
    out = []
    for i, m in enumerate(raw):
        where = "messages[%d]" % i
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise RequestError("%s: a message is an object with a `role`" % where, "messages")
        role = m["role"]
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant", "tool"):
            raise RequestError("%s: unknown role `%s`" % (where, role), "messages")
        msg = {"role": role, "content": _text_of(m.get("content"), where)}
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"] if isinstance(m["tool_calls"], list) else []:
                f = c.get("function") if isinstance(c, dict) else None
                if not isinstance(f, dict) or not isinstance(f.get("name"), str):
                    raise RequestError("%s: a tool call needs `function.name`" % where, "messages")
                args = f.get("arguments") or "{}"
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except ValueError:
                        pass  # kept as the string it is; a template prints it as given
                calls.append({"id": c.get("id"), "type": "function",
                              "function": {"name": f["name"], "arguments": args}})
            msg["tool_calls"] = calls
        if role == "tool":
            if m.get("tool_call_id") is not None:
                msg["tool_call_id"] = m["tool_call_id"]
            if isinstance(m.get("name"), str):
                msg["name"] = m["name"]
        out.append(msg)
    return out


def _tools(body):
    """The declared function tools, in the OpenAI shape `{"type": "function", "function": {...}}`,
    which is also the one transformers passes to chat templates; none when `tool_choice` is
    `none`."""
    tools = body.get("tools")
    if tools is None or body.get("tool_choice") == "none":
        return []
    if not isinstance(tools, list):
        raise RequestError("`tools` must be a list", "tools")
    out = []
    for t in tools:
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(t.get("function"), dict) \
                or not isinstance(t["function"].get("name"), str):
            raise RequestError("each tool is `{\"type\": \"function\", \"function\": {\"name\": ...}}`", "tools")
        out.append({"type": "function", "function": t["function"]})
    return out


def _number(body, key, kind, lo=None, hi=None):
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        ok = False
    elif kind is int:
        ok = isinstance(v, int) or v.is_integer()
    else:
        ok = v == v  # not NaN, which Python's JSON reads
    if not ok or (lo is not None and v < lo) or (hi is not None and v > hi):
        bounds = " in [%s, %s]" % (lo, hi) if hi is not None else (" at least %s" % lo if lo is not None else "")
        raise RequestError("`%s` must be %s%s" % (key, "an integer" if kind is int else "a number", bounds), key)
    return kind(v)


def parse_request(body, max_new_tokens):
    """A chat completion request, checked: everything `Model` needs, or a RequestError. Fields
    not named here (`response_format`, `logprobs`, ...) are accepted and ignored."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    messages = _messages(body)
    tools = _tools(body)
    _number(body, "n", int, 1, 1)  # one choice only: any other count is refused
    asked = _number(body, "max_completion_tokens", int, 1)
    if asked is None:
        asked = _number(body, "max_tokens", int, 1)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is None:
        stop = []
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise RequestError("`stop` must be a string or a list of strings", "stop")
    temperature = _number(body, "temperature", float, 0, 2)
    options = body.get("stream_options")
    return {
        "messages": messages,
        "tools": tools,
        # --max-new-tokens is the default and also a cap: Claude Code asks for 32,000.
        "max_new_tokens": min(asked, max_new_tokens) if asked else max_new_tokens,
        "stop": [s for s in stop if s],
        "temperature": temperature or 0.0,  # absent or 0: greedy
        "top_p": _number(body, "top_p", float, 0, 1),
        "top_k": _number(body, "top_k", int, 0),
        "seed": _number(body, "seed", int, -2**63, 2**64 - 1),  # what torch.manual_seed takes
        "stream": bool(body.get("stream")),
        "include_usage": isinstance(options, dict) and bool(options.get("include_usage")),
    }


# --- Prompts ---------------------------------------------------------------------------------


def _tools_text(tools):
    """The tools as a system text, in the Hermes form `parse_tool_calls` reads back."""
    lines = ["You may call functions. Their signatures, as JSON schemas:", "<tools>"]
    lines += [json.dumps(t["function"]) for t in tools]
    lines += ["</tools>",
              'To call one, answer with <tool_call>{"name": <name>, "arguments": <object>}</tool_call>.']
    return "\n".join(lines)


def _plain_messages(messages, tools):
    """The messages in the three common roles (system, user, assistant): tools in the
    system text, calls written back as Hermes blocks, tool results as user turns."""
    out = []
    system = [m["content"] for m in messages if m["role"] == "system"]
    if tools:
        system.append(_tools_text(tools))
    if system:
        out.append({"role": "system", "content": "\n\n".join(s for s in system if s)})
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            out.append({"role": "user", "content": "<tool_response>\n%s\n</tool_response>" % m["content"]})
        elif m["role"] == "assistant" and m.get("tool_calls"):
            blocks = "".join("%s%s%s" % (TOOL_OPEN, json.dumps({"name": c["function"]["name"],
                                                                 "arguments": c["function"]["arguments"]}), TOOL_CLOSE)
                             for c in m["tool_calls"])
            out.append({"role": "assistant", "content": m["content"] + blocks})
        else:
            out.append({"role": m["role"], "content": m["content"]})
    return out


def render_prompt(tokenizer, messages, tools):
    """The prompt text for `messages` and `tools`, through the tokenizer's chat template.

    Small models' templates differ: some reject the tool role or a system message (they raise),
    some ignore `tools` (they render the same without them). Either way the fallback is a plain
    rendering, `_plain_messages`, where the tools are described in the system text; and when the
    template refuses even that, or there is none, `role: content` lines."""

    def template(msgs, with_tools):
        return tokenizer.apply_chat_template(msgs, tools=with_tools or None, add_generation_prompt=True, tokenize=False)

    try:
        text = template(messages, tools)
        if not tools or text != template(messages, []):
            return text
        log.info("chat template ignores tools; rendering the request plainly")
    except Exception as e:  # a Jinja TemplateError, or a template tripping on a field
        log.info("chat template refused the request as given (%s); rendering it plainly", e)
    plain = _plain_messages(messages, tools)
    try:
        return template(plain, [])
    except Exception as e:
        log.info("chat template refused the plain messages too (%s); using role lines", e)
    return "".join("%s: %s\n" % (m["role"], m["content"]) for m in plain) + "assistant: "


# --- The model -------------------------------------------------------------------------------


class Model:
    """One loaded model and its tokenizer. `lock` lets one request use them at a time: there is
    one model (and on CPU every core already works on one generation), torch's random seed is
    process-wide, and a fast tokenizer must not be used from two threads at once."""

    def __init__(self, name, device="auto", dtype="auto", overflow="truncate"):
        import torch
        import transformers

        self.torch = torch
        self.name = name
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        elif device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("local_shim: --device cuda, but torch sees no GPU")
        self.device = device
        if dtype == "auto":
            # float32 on CPU, where half precision is slow or unsupported; on CUDA the checkpoint's own.
            dtype = torch.float32 if device == "cpu" else "auto"
        else:
            dtype = getattr(torch, dtype)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(name)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(name, dtype=dtype).to(device)
        self.model.eval()
        self.lock = threading.Lock()
        self.overflow = overflow
        config = self.model.config
        config = getattr(config, "get_text_config", lambda: config)()
        self.context = getattr(config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        pad = self.model.generation_config.pad_token_id
        if pad is None:
            pad = self.tokenizer.pad_token_id
        self.pad = pad if pad is not None else next(iter(self.eos), 0)

    def prepare(self, req):
        """The prompt's token ids for a parsed request.

        A prompt that leaves the answer too little of the model's window (its `max_new_tokens`,
        at most half the window) loses its first tokens, or is refused with `--overflow
        refuse`. Truncating is the default because Claude Code's system prompt and tools alone
        are longer than a tiny model's window: the model then sees the end of the conversation,
        and the plumbing still runs."""
        with self.lock:
            text = render_prompt(self.tokenizer, req["messages"], req["tools"])
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if not self.context:
            return ids
        room = min(req["max_new_tokens"], self.context // 2)
        if len(ids) + room <= self.context:
            return ids
        if self.overflow == "refuse":
            raise RequestError("this model's maximum context length is %d tokens; the messages are %d and the "
                               "answer may have %d" % (self.context, len(ids), room), "messages",
                               "context_length_exceeded")
        keep = self.context - room
        log.warning("a prompt of %d tokens and an answer of up to %d do not fit the model's window of %d: the "
                    "prompt's first %d tokens are dropped", len(ids), room, self.context, len(ids) - keep)
        return ids[len(ids) - keep:]

    def _decode(self, ids):
        # No clean-up of spaces: it may rewrite a text already streamed (" 's" -> "'s").
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def events(self, req, prompt):
        """Generates an answer as events: `("text", piece)`, then `("calls", [call, ...])` when
        there are any, then `("done", finish_reason, prompt_tokens, completion_tokens)`.

        The streamed and the whole answer are both made of these events, so they hold the same
        text. Text is given out as soon as it is settled: a token whose bytes are not a whole
        character yet, or an end that may begin a stop string or `<tool_call>`, waits. From a
        `<tool_call>` on (when the request declared tools) the rest is kept to the end and parsed.
        Closing the generator (a client gone) stops the generation."""
        torch = self.torch
        limit = req["max_new_tokens"]
        if self.context:
            limit = max(1, min(limit, self.context - len(prompt)))
        stops = req["stop"]
        markers = stops + ([TOOL_OPEN] if req["tools"] else [])
        with self.lock:
            tokens = queue.Queue()
            halt = threading.Event()
            failure = []

            class Streamer:
                # generate() hands it the prompt first, then each new token.
                first = True

                def put(self, value):
                    if self.first:
                        self.first = False
                        return
                    for t in value.reshape(-1).tolist():
                        tokens.put(t)

                def end(self):
                    pass

            class Halt:
                def __call__(self, input_ids, scores, **kwargs):
                    return torch.full((input_ids.shape[0],), halt.is_set(), dtype=torch.bool, device=input_ids.device)

            sampling = req["temperature"] > 0
            kwargs = {"max_new_tokens": limit, "do_sample": sampling, "pad_token_id": self.pad,
                      "streamer": Streamer(), "stopping_criteria": [Halt()]}
            if sampling:
                kwargs["temperature"] = req["temperature"]
                kwargs["top_p"] = req["top_p"] if req["top_p"] is not None else 1.0
                kwargs["top_k"] = req["top_k"] if req["top_k"] is not None else 0
            else:
                # Greedy: the checkpoint's sampling defaults (some set do_sample) are switched off.
                kwargs.update(temperature=None, top_p=None, top_k=None)
            if req["seed"] is not None:
                torch.manual_seed(req["seed"])
            input_ids = torch.tensor([prompt], device=self.device)

            def run():
                try:
                    with torch.inference_mode():
                        self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs)
                except BaseException as e:  # handed to the consumer, which raises it
                    failure.append(e)
                finally:
                    tokens.put(None)

            worker = threading.Thread(target=run, name="generate", daemon=True)
            worker.start()
            ids = []
            sent = ""
            text = ""
            holding = False  # a <tool_call> began: the rest waits for the end
            stopped = False  # a stop string or the end-of-sequence token ended the answer
            try:
                while True:
                    t = tokens.get()
                    if t is None:
                        break
                    if stopped:
                        continue  # made before generate() saw the halt: not part of the answer
                    ids.append(t)
                    if t in self.eos:
                        stopped = True
                        halt.set()
                        continue
                    text = self._decode(ids)
                    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
                    if cut >= 0:
                        text = text[:cut]
                        stopped = True
                        halt.set()
                    if holding or text.endswith("\ufffd") or not text.startswith(sent):
                        continue
                    if req["tools"] and TOOL_OPEN in text[len(sent):]:
                        holding = True
                        ready = text.index(TOOL_OPEN, len(sent))
                    else:
                        ready = len(text) - (0 if stopped else _held_suffix(text, markers))
                    if ready > len(sent):
                        yield ("text", text[len(sent):ready])
                        sent = text[:ready]
                if failure:
                    raise failure[0]
                # A text that no longer begins with what was sent (a tokenizer that rewrites
                # earlier characters) keeps what was sent; both answers stay the same.
                rest = text[len(sent):] if text.startswith(sent) else ""
                calls = []
                if req["tools"]:
                    rest, calls = parse_tool_calls(rest)
                if rest:
                    yield ("text", rest)
                if calls:
                    yield ("calls", calls)
                if calls:
                    finish = "tool_calls"
                elif stopped:
                    finish = "stop"
                else:
                    finish = "length" if len(ids) >= limit else "stop"
                yield ("done", finish, len(prompt), len(ids))
            finally:
                halt.set()
                worker.join()


# --- HTTP ------------------------------------------------------------------------------------


def _call_id():
    return "call_" + uuid.uuid4().hex[:24]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-shim/1"

    def log_message(self, fmt, *args):
        log.info("%s %s", self.address_string(), fmt % args)

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_envelope(self, err):
        self.send_json(err.status, err.envelope())

    def route(self):
        path = self.path.split("?")[0].rstrip("/")
        return path[3:] if path.startswith("/v1/") else path

    def not_found(self):
        self.send_error_envelope(RequestError("unknown route `%s %s`" % (self.command, self.path.split("?")[0]),
                                              code="unknown_url", status=404))

    def do_GET(self):
        route = self.route()
        name = self.server.model.name
        if route == "/models":
            self.send_json(200, {"object": "list", "data": [{"id": name, "object": "model", "created": 0,
                                                             "owned_by": "local"}]})
        elif route == "/healthz":
            self.send_json(200, {"status": "ok", "model": name, "device": self.server.model.device})
        else:
            self.not_found()

    def do_POST(self):
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error_envelope(RequestError("bad content-length"))
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        if self.route() != "/chat/completions":
            self.not_found()
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.send_error_envelope(RequestError("the body is not JSON", code="invalid_json"))
            return
        started = time.monotonic()
        try:
            req = parse_request(body, self.server.max_new_tokens)
            prompt = self.server.model.prepare(req)
        except RequestError as e:
            log.info("refused: %s", e.message)
            self.send_error_envelope(e)
            return
        except Exception as e:  # a tokenizer or template failing in a way not foreseen
            log.exception("preparing the prompt failed")
            self.send_error_envelope(RequestError("preparing the prompt failed: %s" % type(e).__name__, status=500,
                                                  kind="server_error"))
            return
        events = self.server.model.events(req, prompt)
        try:
            if req["stream"]:
                done = self.stream(req, events)
            else:
                done = self.whole(events)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away")
            return
        finally:
            events.close()
        if done:
            log.info("answered (%s): %d prompt + %d completion tokens in %.1f s", done[1], done[2], done[3],
                     time.monotonic() - started)

    def whole(self, events):
        text = []
        calls = []
        done = None
        try:
            for e in events:
                if e[0] == "text":
                    text.append(e[1])
                elif e[0] == "calls":
                    calls = e[1]
                else:
                    done = e
        except Exception as e:  # the model failed (out of memory, say): logged, not returned
            log.exception("generation failed")
            self.send_error_envelope(RequestError("generation failed: %s" % type(e).__name__, status=500,
                                                  kind="server_error"))
            return None
        content = "".join(text)
        message = {"role": "assistant", "content": content if content.strip() or not calls else None}
        if calls:
            message["tool_calls"] = [{"id": _call_id(), "type": "function", "function": c} for c in calls]
        _, finish, n_in, n_out = done
        self.send_json(200, {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.server.model.name,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out},
        })
        return done

    def stream(self, req, events):
        # The body ends when the connection closes: no length, no chunked encoding to get wrong.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        ident = "chatcmpl-" + uuid.uuid4().hex
        created = int(time.time())
        usage_field = {"usage": None} if req["include_usage"] else {}

        def chunk(delta, finish=None):
            self.data(dict({"id": ident, "object": "chat.completion.chunk", "created": created,
                            "model": self.server.model.name,
                            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]},
                           **usage_field))

        chunk({"role": "assistant", "content": ""})
        done = None
        try:
            for e in events:
                if e[0] == "text":
                    chunk({"content": e[1]})
                elif e[0] == "calls":
                    for k, c in enumerate(e[1]):
                        chunk({"tool_calls": [{"index": k, "id": _call_id(), "type": "function", "function": c}]})
                else:
                    done = e
        except (BrokenPipeError, ConnectionResetError):
            raise
        except Exception as e:
            log.exception("generation failed")
            self.data(RequestError("generation failed: %s" % type(e).__name__, kind="server_error").envelope())
            return None
        _, finish, n_in, n_out = done
        chunk({}, finish)
        if req["include_usage"]:
            self.data({"id": ident, "object": "chat.completion.chunk", "created": created,
                       "model": self.server.model.name, "choices": [],
                       "usage": {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        return done

    def data(self, obj):
        self.wfile.write(("data: %s\n\n" % json.dumps(obj)).encode())
        self.wfile.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="a hub id or a local directory (default: %(default)s)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="auto: cuda when torch sees a GPU, else cpu")
    ap.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"], default="auto",
                    help="auto: float32 on CPU, the checkpoint's own on CUDA")
    ap.add_argument("--max-new-tokens", type=int, default=512,
                    help="tokens an answer may have: the default, and a cap on what a request asks for")
    ap.add_argument("--overflow", choices=["truncate", "refuse"], default="truncate",
                    help="a prompt longer than the model's window: its first tokens are dropped, or it is refused")
    ap.add_argument("--verbose", action="store_true", help="log each request to stderr")
    a = ap.parse_args()
    # logging's handlers take a lock per record: threads' lines never interleave.
    logging.basicConfig(stream=sys.stderr, level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(asctime)s local_shim %(levelname)s %(message)s")
    import transformers

    if not a.verbose:
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    model = Model(a.model, a.device, a.dtype, a.overflow)
    log.info("loaded %s on %s", a.model, model.device)
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    server.model = model
    server.max_new_tokens = a.max_new_tokens
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
