#!/usr/bin/env bash
# Claude Code through fak, on a local model (or Anthropic), in one command.
#
# Builds fak, starts (or reuses) a model backend, starts `fak serve` in front of it with the
# dogfood floor, waits until both answer, and runs Claude Code pointed at fak. Everything it
# started is stopped when it exits, Ctrl-C included. The variables Claude Code needs are set in
# its environment only, never exported to your shell. docs/DOGFOOD-CLAUDE.md is the manual.
#
# Written for bash 3.2 (macOS's /bin/bash) as well as Linux: no associative arrays, no
# `mapfile`, empty arrays expanded as ${a[@]+"${a[@]}"}.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/dogfood-claude.sh [MODE] [--qwen36] [-- CLAUDE-ARGS...]

Claude Code through fak, on a local model, in one command.

Modes:
  (none)            interactive Claude Code in this directory, every call decided by fak
  --probe PROMPT    headless: `claude -p PROMPT --output-format json`; writes a witness file
                    (experiments/agent-live/witness-*.json) with every verdict fak made
  --smoke           no Claude Code: POST /v1/messages through fak, plain and streaming
  --print-env       print the environment Claude Code would get, start nothing
  --install         put fak, fak-dogfood and fak-qwen36-claude in ~/.local/bin
  --qwen36          the Qwen3.6 preset: the openai backend at http://127.0.0.1:8131/v1,
                    lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M, 900 s timeout
  -h, --help        this text
Arguments after `--` go to Claude Code (e.g. -- --dangerously-skip-permissions).

Backends (FAK_DOGFOOD_BACKEND):
  ollama     (default) Ollama at http://127.0.0.1:11434, started when it is not running and
             the model pulled when it is missing
  openai     any OpenAI-compatible server: llama-server, LM Studio, vLLM, SGLang
             (FAK_DOGFOOD_BASE_URL, e.g. http://127.0.0.1:8080/v1)
  anthropic  pass-through to the real API (your ANTHROPIC_API_KEY, or FAK_DOGFOOD_ACCOUNT=1
             for the account Claude Code is logged in with)
  shim       experiments/agent-live/local_shim.py on transformers (CPU or CUDA)

Variables:
  FAK_DOGFOOD_PORT       fak's port (8787; a free one is chosen when it is busy)
  FAK_DOGFOOD_MODEL      the model (ollama: qwen2.5-coder:7b; openai: the first the server
                         lists; shim: HuggingFaceTB/SmolLM2-135M-Instruct; anthropic: Claude
                         Code's own choice)
  FAK_DOGFOOD_BACKEND    ollama | openai | anthropic | shim
  FAK_DOGFOOD_BASE_URL   the backend's URL
  FAK_DOGFOOD_TIMEOUT_S  how long a model may take to answer (300; 900 for openai)
  FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON
                         a JSON object merged into every OpenAI-wire request (top_k, ...)
  FAK_DOGFOOD_OLLAMA_CONTEXT
                         the context window of an Ollama the launcher starts (32768; Ollama's
                         own default of 4096 cuts Claude Code's prompt)
  FAK_DOGFOOD_MAX_TOKENS the most output tokens fak lets a request ask the model for
                         (Claude Code asks for 32,000; a local model's window may be smaller)
  FAK_DOGFOOD_POLICY     the policy fak enforces (policies/dogfood-claude.fak); `none`
                         disables the floor: every call and result is allowed
  FAK_DOGFOOD_ACCOUNT    1: anthropic backend with Claude Code's own login, no API key
  FAK_DOGFOOD_CLAUDE_DEBUG
                         1: Claude Code with --debug, fak's log printed on exit
  FAK_DOGFOOD_STATE_DIR  fak's state, Claude Code's config and logs
                         (${XDG_STATE_HOME:-~/.local/state}/fak/dogfood)
  FAK_DOGFOOD_WITNESS_DIR
                         where --probe writes witness files (experiments/agent-live)
  FAK_DOGFOOD_CLAUDE_BIN Claude Code (claude on PATH)
  FAK_BIN                a fak binary to use instead of building one

Examples:
  scripts/dogfood-claude.sh
  FAK_DOGFOOD_MODEL=qwen3:8b scripts/dogfood-claude.sh --smoke
  FAK_DOGFOOD_BACKEND=openai FAK_DOGFOOD_BASE_URL=http://127.0.0.1:1234/v1 scripts/dogfood-claude.sh
  scripts/dogfood-claude.sh --qwen36 --probe "List the files here and say what this project is."
EOF
}

say() { printf 'dogfood: %s\n' "$*" >&2; }
die() {
    printf 'dogfood: %s\n' "$*" >&2
    exit 2
}

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)

# ---- arguments ---------------------------------------------------------------------------

mode=interactive
prompt=
preset=${FAK_DOGFOOD_PRESET:-}
claude_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --probe)
        [ $# -ge 2 ] || die "--probe needs a prompt: --probe \"List the files here.\""
        mode=probe
        prompt=$2
        shift
        ;;
    --smoke) mode=smoke ;;
    --print-env) mode=print-env ;;
    --install) mode=install ;;
    --qwen36) preset=qwen36 ;;
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        claude_args=("$@")
        break
        ;;
    *) die "unknown argument \`$1\` (see --help)" ;;
    esac
    shift
done

# ---- settings ----------------------------------------------------------------------------

if [ "$preset" = qwen36 ]; then
    : "${FAK_DOGFOOD_BACKEND:=openai}"
    : "${FAK_DOGFOOD_BASE_URL:=http://127.0.0.1:8131/v1}"
    : "${FAK_DOGFOOD_MODEL:=lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M}"
    : "${FAK_DOGFOOD_TIMEOUT_S:=900}"
    qwen36_body='{"top_k":20,"chat_template_kwargs":{"preserve_thinking":true}}'
    : "${FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON:=$qwen36_body}"
elif [ -n "$preset" ]; then
    die "unknown preset \`$preset\` (the one preset is qwen36)"
fi

backend=${FAK_DOGFOOD_BACKEND:-ollama}
model=${FAK_DOGFOOD_MODEL:-}
extra_body=${FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON:-}
account=${FAK_DOGFOOD_ACCOUNT:-0}
debug=${FAK_DOGFOOD_CLAUDE_DEBUG:-0}
state_root=${FAK_DOGFOOD_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/fak/dogfood}
witness_dir=${FAK_DOGFOOD_WITNESS_DIR:-$repo/experiments/agent-live}
claude_bin=${FAK_DOGFOOD_CLAUDE_BIN:-claude}
port=${FAK_DOGFOOD_PORT:-8787}
timeout_default=300
case $backend in
ollama)
    provider=openai
    base_url=${FAK_DOGFOOD_BASE_URL:-http://127.0.0.1:11434}
    model=${model:-qwen2.5-coder:7b}
    ;;
openai)
    provider=openai
    base_url=${FAK_DOGFOOD_BASE_URL:-}
    timeout_default=900
    [ -n "$base_url" ] || [ "$mode" = print-env ] || [ "$mode" = install ] ||
        die "the openai backend needs FAK_DOGFOOD_BASE_URL (llama-server: http://127.0.0.1:8080/v1, LM Studio: http://127.0.0.1:1234/v1, vLLM: http://127.0.0.1:8000/v1)"
    ;;
anthropic)
    provider=anthropic
    base_url=${FAK_DOGFOOD_BASE_URL:-https://api.anthropic.com}
    ;;
shim)
    provider=openai
    base_url=${FAK_DOGFOOD_BASE_URL:-}
    model=${model:-HuggingFaceTB/SmolLM2-135M-Instruct}
    ;;
*) die "unknown backend \`$backend\`: ollama, openai, anthropic or shim" ;;
esac
timeout_s=${FAK_DOGFOOD_TIMEOUT_S:-$timeout_default}
max_tokens=${FAK_DOGFOOD_MAX_TOKENS:-}
ollama_context=${FAK_DOGFOOD_OLLAMA_CONTEXT:-32768}
case $ollama_context in '' | *[!0-9]*) die "FAK_DOGFOOD_OLLAMA_CONTEXT must be a number of tokens, not \`$ollama_context\`" ;; esac
case $max_tokens in *[!0-9]*) die "FAK_DOGFOOD_MAX_TOKENS must be a whole number, not \`$max_tokens\`" ;; esac
case $timeout_s in '' | *[!0-9]*) die "FAK_DOGFOOD_TIMEOUT_S must be a whole number of seconds, not \`$timeout_s\`" ;; esac
case $port in '' | *[!0-9]*) die "FAK_DOGFOOD_PORT must be a port number, not \`$port\`" ;; esac
# The URL without a trailing slash or `/v1`: fak adds the paths itself.
base_root=${base_url%/}
base_root=${base_root%/v1}

policy=${FAK_DOGFOOD_POLICY:-$repo/policies/dogfood-claude.fak}
claude_config=$state_root/claude
if [ "$backend" = anthropic ] && [ "$account" = 1 ]; then
    # Claude Code's own login lives in its own config directory: keep it.
    claude_config=
fi

# ---- the environment Claude Code gets ----------------------------------------------------

# The key Claude Code sends: a placeholder for a local model (fak does not forward it to an
# OpenAI-wire upstream), the caller's own for Anthropic, none with an account login.
api_key=sk-fak-local-placeholder-not-a-real-key
if [ "$backend" = anthropic ]; then
    if [ "$account" = 1 ]; then
        api_key=
    else
        api_key=${ANTHROPIC_API_KEY:-}
        [ -n "$api_key" ] || [ "$mode" = print-env ] || [ "$mode" = install ] || [ "$mode" = smoke ] ||
            die "the anthropic backend needs ANTHROPIC_API_KEY, or FAK_DOGFOOD_ACCOUNT=1 to use the account Claude Code is logged in with"
    fi
fi

# claude_env URL: the VAR=value words of Claude Code's environment, one per line.
claude_env() {
    echo "ANTHROPIC_BASE_URL=$1"
    [ -z "$api_key" ] || echo "ANTHROPIC_API_KEY=$api_key"
    if [ -n "$model" ]; then
        echo "ANTHROPIC_MODEL=$model"
        echo "ANTHROPIC_DEFAULT_OPUS_MODEL=$model"
        echo "ANTHROPIC_DEFAULT_SONNET_MODEL=$model"
        echo "ANTHROPIC_DEFAULT_HAIKU_MODEL=$model"
        echo "ANTHROPIC_SMALL_FAST_MODEL=$model"
    fi
    [ -z "$claude_config" ] || echo "CLAUDE_CONFIG_DIR=$claude_config"
    echo "API_TIMEOUT_MS=$((timeout_s * 1000))"
    echo "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1"
    echo "DISABLE_AUTOUPDATER=1"
}

if [ "$mode" = print-env ]; then
    claude_env "http://127.0.0.1:$port" | while IFS= read -r kv; do
        printf "export %s='%s'\n" "${kv%%=*}" "$(printf '%s' "${kv#*=}" | sed "s/'/'\\\\''/g")"
    done
    # What fak itself is started with, as comments: print-env starts nothing.
    shown=${base_root:-URL-OF-THE-SHIM}
    printf '# fak serve --addr 127.0.0.1:%s --provider %s --base-url %s%s\n' "$port" "$provider" \
        "$shown" "${model:+ --model $model}"
    [ -z "$extra_body" ] || printf '# FAK_PROVIDER_EXTRA_BODY_JSON=%s\n' "$extra_body"
    printf '# FAK_UPSTREAM_TIMEOUT_SECS=%s\n' "$timeout_s"
    exit 0
fi

# ---- fak itself --------------------------------------------------------------------------

find_fak() {
    if [ -n "${FAK_BIN:-}" ]; then
        [ -x "$FAK_BIN" ] || die "FAK_BIN=$FAK_BIN is not an executable"
        fak=$FAK_BIN
    elif [ -f "$repo/Cargo.toml" ] && command -v cargo >/dev/null; then
        say "building fak (cargo build --release)"
        (cd "$repo" && cargo build --release --locked --quiet) || die "cargo build failed"
        fak=$repo/target/release/fak
    elif command -v fak >/dev/null; then
        fak=$(command -v fak)
    else
        die "no fak: install a Rust toolchain (https://rustup.rs) to build it, or set FAK_BIN"
    fi
}

if [ "$mode" = install ]; then
    find_fak
    bin=$HOME/.local/bin
    mkdir -p "$bin"
    # Copied, not linked: a `cargo clean` must not break the installed fak.
    cp "$fak" "$bin/fak.tmp.$$" && chmod 755 "$bin/fak.tmp.$$" && mv -f "$bin/fak.tmp.$$" "$bin/fak"
    for name in fak-dogfood fak-qwen36-claude; do
        preset_arg=
        [ "$name" = fak-qwen36-claude ] && preset_arg=' --qwen36'
        cat >"$bin/$name" <<EOF
#!/usr/bin/env bash
# $name: installed by scripts/dogfood-claude.sh --install from $repo.
# Runs that clone's launcher with the fak installed beside this file; run --install again
# after pulling to pick up a new fak.
script='$repo/scripts/dogfood-claude.sh'
[ -x "\$script" ] || { echo "$name: \$script is gone: run scripts/dogfood-claude.sh --install from a clone" >&2; exit 2; }
FAK_BIN=\${FAK_BIN:-'$bin/fak'} exec "\$script"$preset_arg "\$@"
EOF
        chmod 755 "$bin/$name"
    done
    say "installed $bin/fak, $bin/fak-dogfood and $bin/fak-qwen36-claude"
    case ":$PATH:" in
    *":$bin:"*) ;;
    *) say "$bin is not on your PATH: add  export PATH=\"$bin:\$PATH\"  to your shell's profile" ;;
    esac
    exit 0
fi

if [ "$mode" = interactive ] || [ "$mode" = probe ]; then
    command -v "$claude_bin" >/dev/null ||
        die "no Claude Code (\`$claude_bin\`): npm install -g @anthropic-ai/claude-code, or set FAK_DOGFOOD_CLAUDE_BIN"
fi
command -v curl >/dev/null || die "needs curl"
find_fak

# ---- what it starts, and stops on exit ---------------------------------------------------

started=()
# spawn CMD...: CMD in the background in a process group of its own (job control on for that
# moment), its pid in $spawned and in the list the EXIT trap stops. A terminal's Ctrl-C goes to
# the foreground group only: Claude Code reads it (once clears the line), and the servers under
# it must not hear it; fak, Ollama and Python would each stop on it.
spawn() {
    set -m
    "$@" &
    spawned=$!
    set +m
    started+=("$spawned")
}
# shellcheck disable=SC2329 # called by the EXIT trap
cleanup() {
    local pid
    for pid in ${started[@]+"${started[@]}"}; do
        # The whole group where there is one (Ollama's model runners are its children).
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in ${started[@]+"${started[@]}"}; do
        # Up to 10 s for a clean stop (fak writes its last audit rows), then KILL.
        local i=0
        while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    if [ "$debug" = 1 ] && [ -n "${serve_log:-}" ] && [ -f "$serve_log" ]; then
        say "fak's log: $serve_log"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$state_root/logs" "$state_root/fak"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
run_tag=$stamp-$$

port_busy() { (: <"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# first_line FILE PID SECONDS PATTERN: the first line of FILE once it matches PATTERN (a
# server's `listening on ...`), or nothing when PID dies or time runs out.
first_line() {
    local file=$1 pid=$2 limit=$3 pattern=$4 i=0 line
    while [ $i -lt $((limit * 10)) ]; do
        line=$(head -n 1 "$file" 2>/dev/null || true)
        case $line in *$pattern*)
            printf '%s\n' "$line"
            return 0
            ;;
        esac
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

# wait_http URL SECONDS PID: until URL answers 2xx, the process PID dies, or time runs out.
wait_http() {
    local url=$1 limit=$2 pid=${3:-} i=0
    while [ $i -lt $((limit * 5)) ]; do
        curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.2
        i=$((i + 1))
    done
    return 1
}

# ---- the model backend -------------------------------------------------------------------

case $backend in
ollama)
    if ! curl -fsS -o /dev/null --max-time 3 "$base_root/api/tags" 2>/dev/null; then
        command -v ollama >/dev/null ||
            die "Ollama is not answering at $base_root and \`ollama\` is not installed (https://ollama.com), or choose another FAK_DOGFOOD_BACKEND"
        # Ollama's own default window (4,096 tokens) would cut Claude Code's ~20k-token system
        # prompt and tools silently, and the model would answer a prompt it never saw whole.
        say "starting ollama serve (context $ollama_context tokens)"
        spawn env OLLAMA_HOST="${base_root#http://}" OLLAMA_CONTEXT_LENGTH="$ollama_context" ollama serve \
            >"$state_root/logs/ollama-$run_tag.log" 2>&1
        wait_http "$base_root/api/tags" 60 "$spawned" || die "ollama serve did not come up: $state_root/logs/ollama-$run_tag.log"
    else
        say "using the Ollama at $base_root; unless it was started with OLLAMA_CONTEXT_LENGTH=32768 (or more), it cuts Claude Code's prompt to its 4,096-token default"
    fi
    # Names hold no blanks: without them the list reads the same however it was spaced.
    tags=$(curl -fsS --max-time 10 "$base_root/api/tags" | tr -d ' \t\r\n' || true)
    want=$model
    case $want in *:*) ;; *) want=$want:latest ;; esac
    case $tags in
    *"\"name\":\"$want\""*) ;;
    *)
        command -v ollama >/dev/null || die "Ollama has no model $model, and no \`ollama\` here to pull it"
        say "pulling $model (once)"
        OLLAMA_HOST=${base_root#http://} ollama pull "$model" || die "ollama pull $model failed"
        ;;
    esac
    ;;
shim)
    if [ -z "$base_url" ]; then
        shim_py=${FAK_DOGFOOD_SHIM_PYTHON:-$repo/target/shim-venv/bin/python}
        if [ ! -x "$shim_py" ]; then
            say "installing the shim's Python packages into target/shim-venv (torch, transformers; once)"
            if ! python3 -m venv "$repo/target/shim-venv" ||
                ! "$repo/target/shim-venv/bin/python" -m pip install -q --disable-pip-version-check \
                    -r "$repo/experiments/agent-live/requirements.txt"; then
                die "could not install the shim's packages (experiments/agent-live/requirements.txt)"
            fi
            cp "$repo/experiments/agent-live/requirements.txt" "$repo/target/shim-venv/.requirements.txt"
            shim_py=$repo/target/shim-venv/bin/python
        fi
        shim_log=$state_root/logs/shim-$run_tag.log
        say "starting the local shim with $model (its first start downloads the model)"
        # Port 0: the shim binds a free port and prints it, so nothing can take it in between.
        spawn "$shim_py" "$repo/experiments/agent-live/local_shim.py" --host 127.0.0.1 --port 0 \
            --model "$model" >"$shim_log.out" 2>"$shim_log"
        shim_pid=$spawned
        line=$(first_line "$shim_log.out" "$shim_pid" "$timeout_s" "listening on ") ||
            die "the shim did not start: $shim_log"
        base_root=http://127.0.0.1:${line##* }
        wait_http "$base_root/v1/models" 30 "$shim_pid" || die "the shim does not answer: $shim_log"
    fi
    ;;
esac

if [ "$provider" = openai ]; then
    # Does the server list the model? Some servers do not serve /v1/models at all: then only
    # a warning, and the first request tells.
    if models=$(curl -fsS --max-time 10 "$base_root/v1/models" 2>/dev/null); then
        if [ -z "$model" ]; then
            model=$(printf '%s' "$models" | sed -n 's/[^[]*"data"[^[]*\[[^]]*"id"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
            [ -n "$model" ] || die "$base_root/v1/models lists no model: set FAK_DOGFOOD_MODEL"
            say "model: $model (the first $base_root/v1/models lists)"
        else
            case $models in
            *"\"$model\""*) ;;
            *) say "warning: $base_root/v1/models does not list $model; the server may answer with whatever it has loaded" ;;
            esac
        fi
    else
        [ -n "$model" ] || die "$base_root/v1/models did not answer: is the server up? (or set FAK_DOGFOOD_MODEL)"
        say "warning: $base_root/v1/models did not answer; going on with $model"
    fi
fi

# ---- fak serve ---------------------------------------------------------------------------

policy_args=()
policy_shown=$policy
if [ "$policy" = none ]; then
    printf '# FAK_DOGFOOD_POLICY=none: the floor is off, every call and result is allowed.\nallow everything on *;\n' \
        >"$state_root/none.fak"
    policy_args=(--policy "$state_root/none.fak")
    policy_shown="none (every call allowed)"
elif [ -f "$policy" ]; then
    policy_args=(--policy "$policy")
elif [ -z "${FAK_DOGFOOD_POLICY:-}" ]; then
    policy_shown="the built-in floor"
else
    die "no policy at $policy"
fi

if port_busy "$port"; then
    say "port $port is in use: taking a free one"
    port=0
fi
serve_log=$state_root/logs/fak-serve-$run_tag.log
serve_out=$state_root/logs/fak-serve-$run_tag.out
model_args=()
[ -z "$model" ] || model_args=(--model "$model")
[ -z "$max_tokens" ] || model_args+=(--max-tokens "$max_tokens")
spawn env FAK_UPSTREAM_TIMEOUT_SECS="$timeout_s" FAK_PROVIDER_EXTRA_BODY_JSON="$extra_body" \
    "$fak" serve --addr "127.0.0.1:$port" --provider "$provider" --base-url "$base_root" \
    --state-dir "$state_root/fak" --workspace "$PWD" \
    ${model_args[@]+"${model_args[@]}"} ${policy_args[@]+"${policy_args[@]}"} \
    >"$serve_out" 2>"$serve_log"
serve_pid=$spawned
line=$(first_line "$serve_out" "$serve_pid" 15 "listening on http://") || {
    cat "$serve_log" >&2 || true
    die "fak serve did not start (its log is above: $serve_log)"
}
url=${line#*listening on }
url=${url%% *}
wait_http "$url/healthz" 30 "$serve_pid" || die "fak serve does not answer /healthz: $serve_log"
say "fak serve: listening on $url ($backend at $base_root${model:+, $model}; policy: $policy_shown)"
say "fak's log: $serve_log; its state: $state_root/fak"

# ---- --smoke -----------------------------------------------------------------------------

if [ "$mode" = smoke ]; then
    ask_model=${model:-claude-sonnet-4-5}
    body='{"model":"'$ask_model'","max_tokens":64,"messages":[{"role":"user","content":"Say hello in five words."}]'
    key_header="x-api-key: ${api_key:-none}"
    ok=0
    # smoke BODY WANT: POST BODY, print the answer, and clear ok unless it holds WANT and a 200.
    smoke() {
        local out
        if out=$(curl -sS -N --max-time "$timeout_s" -w '\nHTTP %{http_code}' "$url/v1/messages" \
            -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' -H "$key_header" -d "$1"); then
            printf '%s\n' "$out"
            case $out in *"$2"*"HTTP 200") return 0 ;; esac
        fi
        ok=1
    }
    say "POST $url/v1/messages"
    smoke "$body}" '"type":"message"'
    say "POST $url/v1/messages (stream)"
    smoke "$body,\"stream\":true}" "event: message_stop"
    if [ $ok = 0 ]; then
        say "smoke ok: plain and streaming answers through fak"
    else
        say "smoke FAILED: see the answers above and $serve_log"
    fi
    exit $ok
fi

# ---- Claude Code -------------------------------------------------------------------------

if [ -n "$claude_config" ]; then
    mkdir -p "$claude_config"
    # A new config directory would start with the onboarding screens and ask whether to use
    # the key: mark both done, once, so the first run goes straight to work.
    if [ ! -f "$claude_config/.claude.json" ]; then
        approved=
        [ -z "$api_key" ] || approved='"'$(printf '%s' "$api_key" | tail -c 20)'"'
        printf '{"hasCompletedOnboarding": true, "customApiKeyResponses": {"approved": [%s], "rejected": []}}\n' \
            "$approved" >"$claude_config/.claude.json"
    fi
fi

env_args=(-u ANTHROPIC_AUTH_TOKEN -u ANTHROPIC_CUSTOM_HEADERS)
[ -n "$api_key" ] || env_args+=(-u ANTHROPIC_API_KEY)
while IFS= read -r kv; do env_args+=("$kv"); done <<EOF
$(claude_env "$url")
EOF
[ "$debug" = 1 ] && claude_args=(--debug ${claude_args[@]+"${claude_args[@]}"})

if [ "$mode" = interactive ]; then
    say "starting Claude Code (/exit to leave; fak and the backend stop with it)"
    # Claude Code reads Ctrl-C itself (once clears the line, twice leaves): the script only
    # waits for it to exit, then stops what it started.
    trap ':' INT
    set +e
    env ${env_args[@]+"${env_args[@]}"} "$claude_bin" ${claude_args[@]+"${claude_args[@]}"}
    rc=$?
    set -e
    exit $rc
fi

# --probe: headless, then a witness of what fak decided during the run.
json_str() {
    local s
    s=$(printf '%s' "$1" | tr -d '\000-\010\013\014\016-\037')
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}
seq_before=$("$fak" audit tail -n 1 --json --state-dir "$state_root/fak" 2>/dev/null |
    sed -n 's/^{"seq":\([0-9]*\).*/\1/p')
seq_before=${seq_before:-0}
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
claude_out=$state_root/logs/claude-$run_tag.json
say "claude -p $(json_str "$prompt")"
# In the background with `wait`, so a signal to this script is handled at once (a foreground
# child would hold the trap until it exits) and the EXIT trap stops Claude Code too.
env ${env_args[@]+"${env_args[@]}"} "$claude_bin" -p "$prompt" --output-format json \
    ${claude_args[@]+"${claude_args[@]}"} </dev/null >"$claude_out" &
claude_pid=$!
started+=("$claude_pid")
set +e
wait "$claude_pid"
rc=$?
set -e
finished_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# fak writes an audit row before it answers, so every verdict of the run is in by now.
rows=$("$fak" audit tail --after "$seq_before" --json --state-dir "$state_root/fak" 2>/dev/null || true)
# Another launcher sharing the state directory writes rows too: keep the rows of this run's
# conversation, the trace fak gave Claude Code's session id (when Claude Code printed one).
session=$(sed -n 's/.*"session_id":"\([^"]*\)".*/\1/p' "$claude_out" | head -n 1)
if [ -n "$session" ]; then
    rows=$(printf '%s\n' "$rows" | grep -F "\"trace\":\"$session\"" || true)
fi
counts=
for v in ALLOW DENY TRANSFORM QUARANTINE ESCALATE; do
    n=$(printf '%s\n' "$rows" | grep -c "\"verdict\":\"$v\"" || true)
    [ "$n" = 0 ] || counts="$counts${counts:+, }\"$v\": $n"
done
claude_json=$(cat "$claude_out")
case $claude_json in
"{"*"}") ;;
*) claude_json=$(json_str "$claude_json") ;;
esac
mkdir -p "$witness_dir"
witness=$witness_dir/witness-$run_tag.json
{
    printf '{\n  "witness": "fak-dogfood-probe/v1",\n'
    printf '  "started": "%s",\n  "finished": "%s",\n' "$started_at" "$finished_at"
    printf '  "prompt": %s,\n' "$(json_str "$prompt")"
    printf '  "backend": %s,\n  "base_url": %s,\n  "model": %s,\n' "$(json_str "$backend")" \
        "$(json_str "$base_root")" "$(json_str "$model")"
    printf '  "policy": %s,\n' "$(json_str "$policy_shown")"
    printf '  "fak_version": %s,\n' "$(json_str "$("$fak" --version 2>/dev/null || true)")"
    printf '  "claude_exit": %s,\n  "claude": %s,\n' "$rc" "$claude_json"
    printf '  "counts": {%s},\n  "verdicts": [\n' "$counts"
    printf '%s\n' "$rows" | sed -e '/^$/d' -e 's/^/    /' -e '$!s/$/,/'
    printf '  ]\n}\n'
} >"$witness"
cat "$claude_out"
echo
say "fak's verdicts during the run: {${counts}}"
say "witness: $witness"
exit $rc
