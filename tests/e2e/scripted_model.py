#!/usr/bin/env python3
"""A scripted model server: the only thing the end-to-end tests fake.

It speaks the Anthropic Messages API (`POST /v1/messages`, streaming and not) and OpenAI chat
completions (`POST /v1/chat/completions`, streaming and not) and answers from a script instead
of a model, so real clients (the Claude Code CLI, the official SDKs) can run whole agent loops
offline. Standard library only: the test suite starts it before anything is installed.

    python3 scripted_model.py --script turns.json --log requests.jsonl

prints `listening on PORT` once it accepts connections (port 0 picks a free one).

The script is JSON: `{"turns": [TURN, ...], "side": TURN}`. A TURN is
`{"reasoning"?: "...", "text": "...", "tool_calls": [{"name": "Bash", "input": {...}, "id"?: "..."}],
"stop"?: "...", "pause"?: SECONDS, "whole"?: true}` (reasoning is a thinking block on the
Anthropic wire, `reasoning_content` on the OpenAI one; a streamed turn pauses before its tool
calls; `whole` answers with one JSON body even when the request asked for a stream, as some
servers do)
or `{"error": {"status": 529, "type": "overloaded_error", "message": "..."}}`. On the OpenAI
wire an error turn may carry `"unless_max_tokens_at_most": N` and the TURN to answer instead when
the request asks for at most N tokens (a server whose window the asked-for output overflows).

Which turn answers a request is read from the request alone, so retries get the same answer:
the number of assistant messages already in the conversation picks it (0 for the first request,
1 after the model's first turn came back, ...). Past the last turn the model says "done" and
stops. With `"ollama_models": [NAME, ...]` it also answers Ollama's `GET /api/tags`.
A request that declares no tools is a side call (Claude Code asks a small model for a
title, say) and gets `side`, a short text, so it never uses up a turn.

Every request is appended to the log as one JSON line: method, path, headers and body.
"""

import argparse
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "scripted-model"


def turn_for(script, body, messages):
    if not body.get("tools"):
        return script.get("side") or {"text": "ok"}
    done = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
    turns = script.get("turns", [])
    if done < len(turns):
        return turns[done]
    return script.get("after") or {"text": "done"}


def call_id(turn_index, k, call):
    return call.get("id") or "toolu_scripted_%d_%d" % (turn_index, k)


def usage(body):
    # A rough count, only so clients that read usage find numbers.
    n = len(json.dumps(body)) // 4
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scripted-model/1"

    def log_message(self, fmt, *args):  # quiet: the request log is the record
        pass

    def record(self, body):
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with self.server.log_lock:
            with open(self.server.log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")

    def send_json(self, status, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_scripted")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self):
        self.record(None)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self):
        self.record(None)
        path = self.path.split("?")[0]
        if path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "type": "model",
                                                             "display_name": MODEL}]})
        elif path == "/api/tags" and "ollama_models" in self.server.script:
            # Ollama's model list, for a script that plays Ollama.
            self.send_json(200, {"models": [{"name": n, "model": n} for n in self.server.script["ollama_models"]]})
        else:
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": path}})

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.record(raw.decode("utf-8", "replace"))
            self.send_json(400, {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "body is not JSON"}})
            return
        self.record(body)
        path = self.path.split("?")[0]
        if path.endswith("/v1/messages/count_tokens"):
            self.send_json(200, {"input_tokens": usage(body)})
        elif path.endswith("/v1/messages"):
            self.anthropic(body)
        elif path.endswith("/v1/chat/completions"):
            self.openai(body)
        else:
            # Telemetry and anything else: accepted and dropped.
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

    # --- Anthropic Messages -------------------------------------------------------------

    def anthropic(self, body):
        messages = body.get("messages") or []
        turn = turn_for(self.server.script, body, messages)
        if "error" in turn:
            e = turn["error"]
            self.send_json(e.get("status", 500), {"type": "error", "error": {
                "type": e.get("type", "api_error"), "message": e.get("message", "scripted error")}})
            return
        index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        content = []
        if turn.get("reasoning"):
            content.append({"type": "thinking", "thinking": turn["reasoning"], "signature": "scripted-signature"})
        if turn.get("text"):
            content.append({"type": "text", "text": turn["text"]})
        for k, c in enumerate(turn.get("tool_calls", [])):
            content.append({"type": "tool_use", "id": call_id(index, k, c), "name": c["name"],
                            "input": c.get("input", {})})
        stop = turn.get("stop") or ("tool_use" if turn.get("tool_calls") else "end_turn")
        msg = {"id": "msg_scripted_%d" % index, "type": "message", "role": "assistant",
               "model": body.get("model", MODEL), "content": content, "stop_reason": stop,
               "stop_sequence": None,
               "usage": {"input_tokens": usage(body), "output_tokens": 10,
                         "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}
        if not body.get("stream") or turn.get("whole"):
            self.send_json(200, msg)
            return
        self.start_sse()
        start = dict(msg, content=[], stop_reason=None)
        start["usage"] = dict(msg["usage"], output_tokens=1)
        self.event("message_start", {"type": "message_start", "message": start})
        self.event("ping", {"type": "ping"})
        for i, block in enumerate(content):
            if block["type"] == "thinking":
                self.event("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "thinking", "thinking": "",
                                                                     "signature": ""}})
                self.event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "thinking_delta",
                                                             "thinking": block["thinking"]}})
                self.event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                   "delta": {"type": "signature_delta",
                                                             "signature": block["signature"]}})
            elif block["type"] == "text":
                self.event("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": {"type": "text", "text": ""}})
                text = block["text"]
                for piece in [text[j:j + 16] for j in range(0, len(text), 16)]:
                    self.event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "text_delta", "text": piece}})
            else:
                if turn.get("pause") and block is next(b for b in content if b["type"] == "tool_use"):
                    self.wfile.flush()
                    time.sleep(turn["pause"])
                self.event("content_block_start", {"type": "content_block_start", "index": i,
                                                   "content_block": dict(block, input={})})
                args = json.dumps(block["input"])
                for piece in [args[j:j + 12] for j in range(0, len(args), 12)]:
                    self.event("content_block_delta", {"type": "content_block_delta", "index": i,
                                                       "delta": {"type": "input_json_delta",
                                                                 "partial_json": piece}})
            self.event("content_block_stop", {"type": "content_block_stop", "index": i})
        self.event("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": 10}})
        self.event("message_stop", {"type": "message_stop"})
        self.wfile.flush()

    # --- OpenAI chat completions --------------------------------------------------------

    def openai(self, body):
        messages = body.get("messages") or []
        turn = turn_for(self.server.script, body, messages)
        asked = body.get("max_completion_tokens", body.get("max_tokens"))
        if "unless_max_tokens_at_most" in turn and asked is not None and asked <= turn["unless_max_tokens_at_most"]:
            turn = turn["instead"]
        if "error" in turn:
            e = turn["error"]
            self.send_json(e.get("status", 500), {"error": {
                "message": e.get("message", "scripted error"), "type": e.get("type", "server_error"),
                "param": None, "code": None}})
            return
        index = sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")
        calls = [{"id": call_id(index, k, c), "type": "function",
                  "function": {"name": c["name"], "arguments": json.dumps(c.get("input", {}))}}
                 for k, c in enumerate(turn.get("tool_calls", []))]
        finish = turn.get("stop") or ("tool_calls" if calls else "stop")
        n_in = usage(body)
        if not body.get("stream") or turn.get("whole"):
            message = {"role": "assistant", "content": turn.get("text") or None}
            if turn.get("reasoning"):
                message["reasoning_content"] = turn["reasoning"]
            if calls:
                message["tool_calls"] = calls
            self.send_json(200, {"id": "chatcmpl-scripted-%d" % index, "object": "chat.completion",
                                 "created": 0, "model": body.get("model", MODEL),
                                 "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                                 "usage": {"prompt_tokens": n_in, "completion_tokens": 10,
                                           "total_tokens": n_in + 10}})
            return
        self.start_sse()

        def chunk(delta, finish_reason=None, extra=None):
            c = {"id": "chatcmpl-scripted-%d" % index, "object": "chat.completion.chunk", "created": 0,
                 "model": body.get("model", MODEL),
                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}
            if extra:
                c.update(extra)
            self.data(c)

        chunk({"role": "assistant", "content": ""})
        reasoning = turn.get("reasoning") or ""
        for piece in [reasoning[j:j + 16] for j in range(0, len(reasoning), 16)]:
            chunk({"reasoning_content": piece})
        text = turn.get("text") or ""
        for piece in [text[j:j + 16] for j in range(0, len(text), 16)]:
            chunk({"content": piece})
        if calls and turn.get("pause"):
            self.wfile.flush()
            time.sleep(turn["pause"])
        for k, c in enumerate(calls):
            args = c["function"]["arguments"]
            chunk({"tool_calls": [{"index": k, "id": c["id"], "type": "function",
                                   "function": {"name": c["function"]["name"], "arguments": ""}}]})
            for piece in [args[j:j + 12] for j in range(0, len(args), 12)]:
                chunk({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            self.data({"id": "chatcmpl-scripted-%d" % index, "object": "chat.completion.chunk",
                       "created": 0, "model": body.get("model", MODEL), "choices": [],
                       "usage": {"prompt_tokens": n_in, "completion_tokens": 10,
                                 "total_tokens": n_in + 10}})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    # --- SSE ------------------------------------------------------------------------------

    def start_sse(self):
        # The body ends when the connection closes: no length, no chunking to get wrong.
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.send_header("request-id", "req_scripted")
        self.end_headers()
        self.close_connection = True

    def event(self, name, obj):
        self.wfile.write(("event: %s\ndata: %s\n\n" % (name, json.dumps(obj))).encode())

    def data(self, obj):
        self.wfile.write(("data: %s\n\n" % json.dumps(obj)).encode())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--script", required=True, help="the turns, as JSON")
    ap.add_argument("--log", required=True, help="where each request is appended as a JSON line")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    with open(a.script, encoding="utf-8") as f:
        script = json.load(f)
    server = ThreadingHTTPServer((a.host, a.port), Handler)
    server.daemon_threads = True
    server.script = script
    server.log_path = a.log
    server.log_lock = threading.Lock()
    print("listening on %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
