#Requires -Version 5.1
<#
.SYNOPSIS
Claude Code through fak, on a local model (or Anthropic), in one command: the Windows launcher.

.DESCRIPTION
The PowerShell twin of scripts/dogfood-claude.sh. Builds fak, starts (or reuses) a model
backend, starts `fak serve` in front of it with the dogfood floor, waits until both answer, and
runs Claude Code pointed at fak. Everything it started is stopped when it exits, Ctrl-C
included. The variables Claude Code needs are set for Claude Code only (saved before, restored
after), never left in your session. docs/DOGFOOD-CLAUDE.md is the manual.

Runs on Windows PowerShell 5.1 and PowerShell 7. On Windows the default backend is `shim`
(experiments/agent-live/local_shim.py on transformers, CUDA when torch sees a GPU); ollama,
openai and anthropic work as in the bash script. Run `-Help` for the variables.

.PARAMETER Probe
Headless: `claude -p PROMPT --output-format json`; writes a witness file
(experiments\agent-live\witness-*.json) with every verdict fak made during the run.

.PARAMETER Smoke
No Claude Code: POST /v1/messages through fak, plain and streaming.

.PARAMETER PrintEnv
Print the environment Claude Code would get (as `$env:NAME = 'value'` lines), start nothing.

.PARAMETER Install
Copy fak.exe to $HOME\.local\bin and write fak-dogfood.cmd and fak-qwen36-claude.cmd there.

.PARAMETER Qwen36
The Qwen3.6 preset: the openai backend at http://127.0.0.1:8131/v1,
lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M, 900 s timeout.

.PARAMETER Help
Print the usage, the backends and the variables.

.PARAMETER ClaudeArgs
Everything else goes to Claude Code (e.g. --dangerously-skip-permissions).

.EXAMPLE
powershell -ExecutionPolicy Bypass -File scripts\dogfood-claude.ps1

.EXAMPLE
$env:FAK_DOGFOOD_MODEL = 'Qwen/Qwen2.5-0.5B-Instruct'; .\scripts\dogfood-claude.ps1 -Smoke

.EXAMPLE
$env:FAK_DOGFOOD_BACKEND = 'ollama'; .\scripts\dogfood-claude.ps1 -- --dangerously-skip-permissions

.EXAMPLE
.\scripts\dogfood-claude.ps1 -Qwen36 -Probe "List the files here and say what this project is."
#>
[CmdletBinding(PositionalBinding = $false)]
param(
    [string]$Probe,
    [switch]$Smoke,
    [switch]$PrintEnv,
    [switch]$Install,
    [switch]$Qwen36,
    [switch]$Help,
    [Parameter(ValueFromRemainingArguments = $true)]
    [string[]]$ClaudeArgs
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
# PowerShell 7.3+ could turn a native command's non-zero exit into an error under 'Stop': this
# script reads $LASTEXITCODE itself. (On 5.1 this only sets an unused variable.)
$PSNativeCommandUseErrorActionPreference = $false
# Invoke-WebRequest's progress bar makes Windows PowerShell 5.1 many times slower.
$ProgressPreference = 'SilentlyContinue'
# .NET Framework sends `Expect: 100-continue` before a POST body by default: not wanted here.
[System.Net.ServicePointManager]::Expect100Continue = $false

$usage = @'
Usage: scripts\dogfood-claude.ps1 [MODE] [-Qwen36] [CLAUDE-ARGS...]

Claude Code through fak, on a local model, in one command (Windows PowerShell 5.1 or 7).

Modes:
  (none)            interactive Claude Code in this directory, every call decided by fak
  -Probe PROMPT     headless: `claude -p PROMPT --output-format json`; writes a witness file
                    (experiments\agent-live\witness-*.json) with every verdict fak made
  -Smoke            no Claude Code: POST /v1/messages through fak, plain and streaming
  -PrintEnv         print the environment Claude Code would get, start nothing
  -Install          put fak.exe, fak-dogfood.cmd and fak-qwen36-claude.cmd in $HOME\.local\bin
  -Qwen36           the Qwen3.6 preset: the openai backend at http://127.0.0.1:8131/v1,
                    lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M, 900 s timeout
  -Help             this text
Other arguments go to Claude Code (e.g. -- --dangerously-skip-permissions).

Backends (FAK_DOGFOOD_BACKEND):
  shim       (default on Windows) experiments\agent-live\local_shim.py on transformers, in
             target\shim-venv (created once from experiments\agent-live\requirements.txt);
             on CUDA when torch sees an NVIDIA GPU, else on CPU
  ollama     Ollama at http://127.0.0.1:11434, started when it is not running and the model
             pulled when it is missing
  openai     any OpenAI-compatible server: llama-server, LM Studio, vLLM, SGLang
             (FAK_DOGFOOD_BASE_URL, e.g. http://127.0.0.1:8080/v1)
  anthropic  pass-through to the real API (your ANTHROPIC_API_KEY, or FAK_DOGFOOD_ACCOUNT=1
             for the account Claude Code is logged in with)

Variables:
  FAK_DOGFOOD_PORT       fak's port (8787; the next ones, up to 20, when it is busy)
  FAK_DOGFOOD_MODEL      the model (shim: HuggingFaceTB/SmolLM2-135M-Instruct; ollama:
                         qwen2.5-coder:7b; openai: the first the server lists; anthropic:
                         Claude Code's own choice)
  FAK_DOGFOOD_BACKEND    shim | ollama | openai | anthropic
  FAK_DOGFOOD_BASE_URL   the backend's URL
  FAK_DOGFOOD_TIMEOUT_S  how long a model may take to answer (300; 900 for openai)
  FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON
                         a JSON object merged into every OpenAI-wire request (top_k, ...)
  FAK_DOGFOOD_OLLAMA_CONTEXT
                         the context window of an Ollama the launcher starts (32768; Ollama's
                         own default of 4096 cuts Claude Code's prompt)
  FAK_DOGFOOD_MAX_TOKENS the most output tokens fak lets a request ask the model for
                         (Claude Code asks for 32,000; a local model's window may be smaller)
  FAK_DOGFOOD_POLICY     the policy fak enforces (policies\dogfood-claude.fak); `none`
                         disables the floor: every call and result is allowed
  FAK_DOGFOOD_ACCOUNT    1: anthropic backend with Claude Code's own login, no API key
  FAK_DOGFOOD_CLAUDE_DEBUG
                         1: Claude Code with --debug, fak's log named on exit
  FAK_DOGFOOD_STATE_DIR  fak's state, Claude Code's config and logs
                         ($env:LOCALAPPDATA\fak\dogfood)
  FAK_DOGFOOD_WITNESS_DIR
                         where -Probe writes witness files (experiments\agent-live)
  FAK_DOGFOOD_CLAUDE_BIN Claude Code (claude on PATH)
  FAK_DOGFOOD_SHIM_PYTHON
                         the shim's Python (target\shim-venv\Scripts\python.exe)
  FAK_DOGFOOD_PRESET     qwen36: the same as -Qwen36
  FAK_BIN                a fak binary to use instead of building one

Examples:
  powershell -ExecutionPolicy Bypass -File scripts\dogfood-claude.ps1
  $env:FAK_DOGFOOD_MODEL = 'Qwen/Qwen2.5-0.5B-Instruct'; scripts\dogfood-claude.ps1 -Smoke
  $env:FAK_DOGFOOD_BACKEND = 'openai'; $env:FAK_DOGFOOD_BASE_URL = 'http://127.0.0.1:1234/v1'
  scripts\dogfood-claude.ps1 -Qwen36 -Probe "List the files here and say what this project is."
'@

function Write-Say([string]$Message) {
    [Console]::Error.WriteLine('dogfood: ' + $Message)
}

function Stop-Dogfood([string]$Message) {
    # `exit` unwinds through the `finally` below: what was started is stopped.
    [Console]::Error.WriteLine('dogfood: ' + $Message)
    exit 2
}

$repo = (Resolve-Path -LiteralPath (Join-Path $PSScriptRoot '..')).ProviderPath
$utf8NoBom = New-Object System.Text.UTF8Encoding($false)
$invariant = [System.Globalization.CultureInfo]::InvariantCulture

# ---- arguments ---------------------------------------------------------------------------

if ($Help) {
    Write-Output $usage
    exit 0
}

$modes = @()
if ($PSBoundParameters.ContainsKey('Probe')) { $modes += 'probe' }
if ($Smoke) { $modes += 'smoke' }
if ($PrintEnv) { $modes += 'print-env' }
if ($Install) { $modes += 'install' }
if ($modes.Count -gt 1) {
    Stop-Dogfood ('one mode at a time, not ' + ($modes -join ' and ') + ' (see -Help)')
}
$mode = 'interactive'
if ($modes.Count -eq 1) { $mode = $modes[0] }
if ($mode -eq 'probe' -and [string]::IsNullOrEmpty($Probe)) {
    Stop-Dogfood '-Probe needs a prompt: -Probe "List the files here."'
}

# What PowerShell left over goes to Claude Code; a `--` that came through is dropped.
$claudeArgList = @($ClaudeArgs | Where-Object { $null -ne $_ })
if ($claudeArgList.Count -gt 0 -and $claudeArgList[0] -eq '--') {
    $claudeArgList = @($claudeArgList | Select-Object -Skip 1)
}

# ---- settings ----------------------------------------------------------------------------

$preset = $env:FAK_DOGFOOD_PRESET
if ($Qwen36) { $preset = 'qwen36' }
$presetDefaults = @{}
if ($preset -eq 'qwen36') {
    $presetDefaults = @{
        FAK_DOGFOOD_BACKEND                  = 'openai'
        FAK_DOGFOOD_BASE_URL                 = 'http://127.0.0.1:8131/v1'
        FAK_DOGFOOD_MODEL                    = 'lmstudio-community/Qwen3.6-27B-GGUF:Q4_K_M'
        FAK_DOGFOOD_TIMEOUT_S                = '900'
        FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON = '{"top_k":20,"chat_template_kwargs":{"preserve_thinking":true}}'
    }
} elseif (-not [string]::IsNullOrEmpty($preset)) {
    Stop-Dogfood "unknown preset ``$preset`` (the one preset is qwen36)"
}

# Get-Setting NAME DEFAULT: the variable when it is set and not empty, else the preset's value,
# else DEFAULT (bash's ${NAME:-DEFAULT} after the preset's ${NAME:=VALUE}).
function Get-Setting([string]$Name, [string]$Default) {
    $value = [Environment]::GetEnvironmentVariable($Name)
    if ([string]::IsNullOrEmpty($value) -and $presetDefaults.ContainsKey($Name)) {
        $value = $presetDefaults[$Name]
    }
    if ([string]::IsNullOrEmpty($value)) { $value = $Default }
    return $value
}

$backend = Get-Setting 'FAK_DOGFOOD_BACKEND' 'shim'
$model = Get-Setting 'FAK_DOGFOOD_MODEL' ''
$extraBody = Get-Setting 'FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON' ''
$account = Get-Setting 'FAK_DOGFOOD_ACCOUNT' '0'
$debugClaude = Get-Setting 'FAK_DOGFOOD_CLAUDE_DEBUG' '0'
$localAppData = $env:LOCALAPPDATA
if ([string]::IsNullOrEmpty($localAppData)) { $localAppData = Join-Path $HOME 'AppData\Local' }
$stateRoot = Get-Setting 'FAK_DOGFOOD_STATE_DIR' (Join-Path $localAppData 'fak\dogfood')
$witnessDir = Get-Setting 'FAK_DOGFOOD_WITNESS_DIR' (Join-Path $repo 'experiments\agent-live')
$claudeBin = Get-Setting 'FAK_DOGFOOD_CLAUDE_BIN' 'claude'
$port = Get-Setting 'FAK_DOGFOOD_PORT' '8787'
$baseUrlSetting = Get-Setting 'FAK_DOGFOOD_BASE_URL' ''
$timeoutDefault = '300'
$provider = 'openai'
$baseUrl = ''
switch ($backend) {
    'ollama' {
        $provider = 'openai'
        $baseUrl = $baseUrlSetting
        if ([string]::IsNullOrEmpty($baseUrl)) { $baseUrl = 'http://127.0.0.1:11434' }
        if ([string]::IsNullOrEmpty($model)) { $model = 'qwen2.5-coder:7b' }
    }
    'openai' {
        $provider = 'openai'
        $baseUrl = $baseUrlSetting
        $timeoutDefault = '900'
        if ([string]::IsNullOrEmpty($baseUrl) -and $mode -ne 'print-env' -and $mode -ne 'install') {
            Stop-Dogfood 'the openai backend needs FAK_DOGFOOD_BASE_URL (llama-server: http://127.0.0.1:8080/v1, LM Studio: http://127.0.0.1:1234/v1, vLLM: http://127.0.0.1:8000/v1)'
        }
    }
    'anthropic' {
        $provider = 'anthropic'
        $baseUrl = $baseUrlSetting
        if ([string]::IsNullOrEmpty($baseUrl)) { $baseUrl = 'https://api.anthropic.com' }
    }
    'shim' {
        $provider = 'openai'
        $baseUrl = $baseUrlSetting
        if ([string]::IsNullOrEmpty($model)) { $model = 'HuggingFaceTB/SmolLM2-135M-Instruct' }
    }
    default {
        Stop-Dogfood "unknown backend ``$backend``: shim, ollama, openai or anthropic"
    }
}
$timeoutS = Get-Setting 'FAK_DOGFOOD_TIMEOUT_S' $timeoutDefault
$maxTokens = Get-Setting 'FAK_DOGFOOD_MAX_TOKENS' ''
if ($maxTokens -notmatch '^[0-9]*$') {
    Stop-Dogfood "FAK_DOGFOOD_MAX_TOKENS must be a whole number, not ``$maxTokens``"
}
$ollamaContext = Get-Setting 'FAK_DOGFOOD_OLLAMA_CONTEXT' '32768'
if ($ollamaContext -notmatch '^[0-9]{1,9}$') {
    Stop-Dogfood "FAK_DOGFOOD_OLLAMA_CONTEXT must be a number of tokens, not ``$ollamaContext``"
}
if ($timeoutS -notmatch '^[0-9]{1,9}$') {
    Stop-Dogfood "FAK_DOGFOOD_TIMEOUT_S must be a whole number of seconds, not ``$timeoutS``"
}
if ($port -notmatch '^[0-9]{1,5}$' -or [int]$port -gt 65535) {
    Stop-Dogfood "FAK_DOGFOOD_PORT must be a port number, not ``$port``"
}
$timeoutSec = [int]$timeoutS
$portNumber = [int]$port
# The URL without a trailing slash or `/v1`: fak adds the paths itself.
$baseRoot = ([string]$baseUrl) -replace '/$', ''
$baseRoot = $baseRoot -replace '/v1$', ''

$policy = Get-Setting 'FAK_DOGFOOD_POLICY' (Join-Path $repo 'policies\dogfood-claude.fak')
$claudeConfig = Join-Path $stateRoot 'claude'
if ($backend -eq 'anthropic' -and $account -eq '1') {
    # Claude Code's own login lives in its own config directory: keep it.
    $claudeConfig = ''
}

# ---- the environment Claude Code gets ----------------------------------------------------

# The key Claude Code sends: a placeholder for a local model (fak does not forward it to an
# OpenAI-wire upstream), the caller's own for Anthropic, none with an account login.
$apiKey = 'sk-fak-local-placeholder-not-a-real-key'
if ($backend -eq 'anthropic') {
    if ($account -eq '1') {
        $apiKey = ''
    } else {
        $apiKey = [string]$env:ANTHROPIC_API_KEY
        if ([string]::IsNullOrEmpty($apiKey) -and $mode -ne 'print-env' -and $mode -ne 'install' -and $mode -ne 'smoke') {
            Stop-Dogfood 'the anthropic backend needs ANTHROPIC_API_KEY, or FAK_DOGFOOD_ACCOUNT=1 to use the account Claude Code is logged in with'
        }
    }
}

# Get-ClaudeEnv URL: Claude Code's environment, NAME -> value, in order.
function Get-ClaudeEnv([string]$Url) {
    $vars = [ordered]@{}
    $vars['ANTHROPIC_BASE_URL'] = $Url
    if (-not [string]::IsNullOrEmpty($apiKey)) { $vars['ANTHROPIC_API_KEY'] = $apiKey }
    if (-not [string]::IsNullOrEmpty($model)) {
        $vars['ANTHROPIC_MODEL'] = $model
        $vars['ANTHROPIC_DEFAULT_OPUS_MODEL'] = $model
        $vars['ANTHROPIC_DEFAULT_SONNET_MODEL'] = $model
        $vars['ANTHROPIC_DEFAULT_HAIKU_MODEL'] = $model
        $vars['ANTHROPIC_SMALL_FAST_MODEL'] = $model
    }
    if (-not [string]::IsNullOrEmpty($claudeConfig)) { $vars['CLAUDE_CONFIG_DIR'] = $claudeConfig }
    $vars['API_TIMEOUT_MS'] = ([long]$timeoutSec * 1000).ToString($invariant)
    $vars['CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC'] = '1'
    $vars['DISABLE_AUTOUPDATER'] = '1'
    return $vars
}

if ($mode -eq 'print-env') {
    $claudeVars = Get-ClaudeEnv "http://127.0.0.1:$portNumber"
    foreach ($name in @($claudeVars.Keys)) {
        Write-Output ("`$env:" + $name + " = '" + ($claudeVars[$name] -replace "'", "''") + "'")
    }
    # What fak itself is started with, as comments: -PrintEnv starts nothing.
    $shown = $baseRoot
    if ([string]::IsNullOrEmpty($shown)) { $shown = 'URL-OF-THE-SHIM' }
    $modelShown = ''
    if (-not [string]::IsNullOrEmpty($model)) { $modelShown = " --model $model" }
    Write-Output "# fak serve --addr 127.0.0.1:$portNumber --provider $provider --base-url $shown$modelShown"
    if (-not [string]::IsNullOrEmpty($extraBody)) { Write-Output "# FAK_PROVIDER_EXTRA_BODY_JSON=$extraBody" }
    Write-Output "# FAK_UPSTREAM_TIMEOUT_SECS=$timeoutSec"
    exit 0
}

# ---- helpers -----------------------------------------------------------------------------

# One argument quoted for a Windows command line (the CommandLineToArgvW rules): Start-Process
# passes -ArgumentList as it is, so the quoting is done here, the same on 5.1 and 7.
function ConvertTo-NativeArgument([string]$Argument) {
    if ($Argument.Length -gt 0 -and $Argument -notmatch '[\s"]') { return $Argument }
    $sb = New-Object System.Text.StringBuilder
    [void]$sb.Append([char]'"')
    $backslashes = 0
    foreach ($ch in $Argument.ToCharArray()) {
        if ($ch -eq [char]'\') {
            $backslashes++
            continue
        }
        if ($ch -eq [char]'"') {
            [void]$sb.Append([char]'\', 2 * $backslashes + 1)
        } elseif ($backslashes -gt 0) {
            [void]$sb.Append([char]'\', $backslashes)
        }
        [void]$sb.Append($ch)
        $backslashes = 0
    }
    if ($backslashes -gt 0) { [void]$sb.Append([char]'\', 2 * $backslashes) }
    [void]$sb.Append([char]'"')
    return $sb.ToString()
}

function Join-NativeArguments([string[]]$Arguments) {
    $quoted = @(foreach ($a in @($Arguments)) { ConvertTo-NativeArgument $a })
    return ($quoted -join ' ')
}

# The processes this run started, stopped (with their children) on exit.
$started = New-Object 'System.Collections.Generic.List[System.Diagnostics.Process]'

# Start-Logged FILE ARGS STDOUT STDERR: a background process in this console, its output in
# files; stopped on exit. Sharing the console is safe for Ctrl-C: while Claude Code runs it
# holds the console in raw mode, where Ctrl-C is a key it reads and no process gets a signal;
# at other times Ctrl-C stops this script, and the `finally` below stops the rest.
function Start-Logged([string]$FilePath, [string[]]$Arguments, [string]$Stdout, [string]$Stderr, [string]$Stdin) {
    $spec = @{
        FilePath               = $FilePath
        RedirectStandardOutput = $Stdout
        RedirectStandardError  = $Stderr
        NoNewWindow            = $true
        PassThru               = $true
    }
    if (@($Arguments).Count -gt 0) { $spec['ArgumentList'] = (Join-NativeArguments $Arguments) }
    if (-not [string]::IsNullOrEmpty($Stdin)) { $spec['RedirectStandardInput'] = $Stdin }
    $process = Start-Process @spec
    # Touching the handle now keeps ExitCode readable after the process exits (without it a
    # Start-Process -PassThru process reports $null).
    $null = $process.Handle
    $started.Add($process)
    return $process
}

# Invoke-Captured FILE ARGS: runs it to the end; its exit code and its stdout (UTF-8). Files,
# not a pipe: no console code page, and no stderr turned into errors by Windows PowerShell.
function Invoke-Captured([string]$FilePath, [string[]]$Arguments, [int]$TimeoutSec = 120) {
    $out = [System.IO.Path]::GetTempFileName()
    $err = [System.IO.Path]::GetTempFileName()
    try {
        $spec = @{
            FilePath               = $FilePath
            RedirectStandardOutput = $out
            RedirectStandardError  = $err
            NoNewWindow            = $true
            PassThru               = $true
        }
        if (@($Arguments).Count -gt 0) { $spec['ArgumentList'] = (Join-NativeArguments $Arguments) }
        $process = Start-Process @spec
        $null = $process.Handle
        $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSec)
        while (-not $process.WaitForExit(200)) {
            if ([DateTime]::UtcNow -gt $deadline) {
                Stop-Tree $process
                return [pscustomobject]@{ ExitCode = -1; Stdout = '' }
            }
        }
        $process.WaitForExit()
        return [pscustomobject]@{ ExitCode = $process.ExitCode; Stdout = (Read-SharedText $out) }
    } finally {
        Remove-Item -LiteralPath $out, $err -Force -ErrorAction SilentlyContinue
    }
}

# A file another process may still be writing (Start-Process opens its redirections shared).
function Read-SharedText([string]$Path) {
    if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) { return '' }
    $stream = $null
    try {
        $stream = [System.IO.FileStream]::new($Path, [System.IO.FileMode]::Open, [System.IO.FileAccess]::Read,
            ([System.IO.FileShare]::ReadWrite -bor [System.IO.FileShare]::Delete))
        $reader = [System.IO.StreamReader]::new($stream, $utf8NoBom)
        return $reader.ReadToEnd()
    } catch {
        return ''
    } finally {
        if ($null -ne $stream) { $stream.Dispose() }
    }
}

function Write-Utf8File([string]$Path, [string]$Text) {
    [System.IO.File]::WriteAllText($Path, $Text, $utf8NoBom)
}

# A process and its children (the venv's python.exe, cmd.exe, ollama's runners): taskkill /T.
function Stop-Tree([System.Diagnostics.Process]$Process) {
    $ErrorActionPreference = 'Continue'
    try {
        if ($Process.HasExited) { return }
        & taskkill.exe /PID $Process.Id /T /F *> $null
        if (-not $Process.WaitForExit(10000)) { $Process.Kill() }
    } catch {
        # Gone already, or not ours to stop.
    }
}

# Set-ChildEnv VARS: sets them in this process (a $null value removes one), so that what is
# started next inherits them; returns what to give Restore-ChildEnv afterwards.
function Set-ChildEnv([System.Collections.IDictionary]$Vars) {
    $saved = [ordered]@{}
    foreach ($name in @($Vars.Keys)) {
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $Vars[$name])
    }
    return $saved
}

function Restore-ChildEnv($Saved) {
    if ($null -eq $Saved) { return }
    foreach ($name in @($Saved.Keys)) {
        [Environment]::SetEnvironmentVariable($name, $Saved[$name])
    }
}

# Test-PortFree PORT: can a listener bind 127.0.0.1:PORT (what fak serve does)?
function Test-PortFree([int]$Port) {
    $listener = $null
    try {
        $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, $Port)
        $listener.Start()
        return $true
    } catch {
        return $false
    } finally {
        if ($null -ne $listener) { $listener.Stop() }
    }
}

# Wait-Http URL SECONDS PROCESS: until URL answers 2xx, PROCESS exits, or time runs out.
function Wait-Http([string]$Url, [int]$Seconds, $Process) {
    $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
    while ([DateTime]::UtcNow -lt $deadline) {
        try {
            $null = Invoke-WebRequest -Uri $Url -UseBasicParsing -TimeoutSec 2
            return $true
        } catch {
            # Not up yet.
        }
        if ($null -ne $Process -and $Process.HasExited) { return $false }
        Start-Sleep -Milliseconds 200
    }
    return $false
}

# Wait-Line FILE PROCESS SECONDS PATTERN: the first match of PATTERN (a regex) in FILE, which
# PROCESS writes (a server's `listening on ...` line), or $null when PROCESS exits or time runs
# out.
function Wait-Line([string]$Path, $Process, [int]$Seconds, [string]$Pattern) {
    $deadline = [DateTime]::UtcNow.AddSeconds($Seconds)
    while ($true) {
        $m = [regex]::Match((Read-SharedText $Path), $Pattern)
        if ($m.Success) { return $m }
        if ($Process.HasExited -or [DateTime]::UtcNow -gt $deadline) { return $null }
        Start-Sleep -Milliseconds 100
    }
}

# GET URL as JSON, or $null when it does not answer 2xx JSON.
function Get-Json([string]$Url, [int]$TimeoutSec = 10) {
    try {
        return Invoke-RestMethod -Uri $Url -UseBasicParsing -TimeoutSec $TimeoutSec
    } catch {
        return $null
    }
}

# A property of a parsed JSON object, or $null (Set-StrictMode forbids reading a missing one).
function Get-JsonProperty($Object, [string]$Name) {
    if ($null -eq $Object) { return $null }
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) { return $null }
    return $property.Value
}

# The path of an application on PATH (or at a path), or $null. An .exe or .cmd first: npm puts
# an extensionless sh script beside claude.cmd, and Start-Process cannot run a .ps1.
function Find-Application([string]$Name) {
    $found = @(Get-Command -Name $Name -CommandType Application -ErrorAction SilentlyContinue)
    if ($found.Count -eq 0) { return $null }
    foreach ($command in $found) {
        if ($command.Path -match '\.(exe|cmd|bat|com)$') { return $command.Path }
    }
    return $found[0].Path
}

# Get-Stamp FORMAT: the UTC time, the same digits in every culture.
function Get-Stamp([string]$Format) {
    return [DateTime]::UtcNow.ToString($Format, $invariant)
}

# ---- fak itself --------------------------------------------------------------------------

function Find-Fak {
    if (-not [string]::IsNullOrEmpty($env:FAK_BIN)) {
        if (-not (Test-Path -LiteralPath $env:FAK_BIN -PathType Leaf)) {
            Stop-Dogfood "FAK_BIN=$($env:FAK_BIN) is not a file"
        }
        return (Resolve-Path -LiteralPath $env:FAK_BIN).ProviderPath
    }
    $cargo = Find-Application 'cargo'
    if ((Test-Path -LiteralPath (Join-Path $repo 'Cargo.toml') -PathType Leaf) -and $null -ne $cargo) {
        Write-Say 'building fak (cargo build --release)'
        Push-Location -LiteralPath $repo
        try {
            # Out-Host: whatever cargo prints is shown, not returned with the path.
            & $cargo build --release --locked --quiet | Out-Host
            $rc = $LASTEXITCODE
        } finally {
            Pop-Location
        }
        if ($rc -ne 0) { Stop-Dogfood 'cargo build failed' }
        $built = Join-Path $repo 'target\release\fak.exe'
        if (-not (Test-Path -LiteralPath $built -PathType Leaf)) {
            Stop-Dogfood "cargo built no $built (is CARGO_TARGET_DIR set? then set FAK_BIN)"
        }
        return $built
    }
    $installed = Find-Application 'fak'
    if ($null -ne $installed) { return $installed }
    Stop-Dogfood 'no fak: install a Rust toolchain (https://rustup.rs) to build it, or set FAK_BIN'
}

if ($mode -eq 'install') {
    $fak = Find-Fak
    $bin = Join-Path $HOME '.local\bin'
    New-Item -ItemType Directory -Force -Path $bin | Out-Null
    # Copied, not linked: a `cargo clean` must not break the installed fak.
    $tmp = Join-Path $bin "fak.tmp.$PID.exe"
    try {
        Copy-Item -LiteralPath $fak -Destination $tmp -Force
        Move-Item -LiteralPath $tmp -Destination (Join-Path $bin 'fak.exe') -Force
    } catch {
        Remove-Item -LiteralPath $tmp -Force -ErrorAction SilentlyContinue
        Stop-Dogfood "could not replace $bin\fak.exe (is a fak still running?): $($_.Exception.Message)"
    }
    # cmd.exe reads a batch file in the console's OEM code page.
    $batchEncoding = [System.Text.Encoding]::ASCII
    try {
        $batchEncoding = [System.Text.Encoding]::GetEncoding([System.Globalization.CultureInfo]::CurrentCulture.TextInfo.OEMCodePage)
    } catch {
        # ASCII, then.
    }
    $self = Join-Path $repo 'scripts\dogfood-claude.ps1'
    foreach ($name in @('fak-dogfood', 'fak-qwen36-claude')) {
        $presetArg = ''
        if ($name -eq 'fak-qwen36-claude') { $presetArg = ' -Qwen36' }
        $lines = @(
            '@echo off',
            "rem ${name}: installed by scripts\dogfood-claude.ps1 -Install from $repo.",
            'rem Runs that clone''s launcher with the fak installed beside this file; run -Install',
            'rem again after pulling to pick up a new fak.',
            'setlocal',
            "set `"script=$self`"",
            'if exist "%script%" goto run',
            ">&2 echo ${name}: `"%script%`" is gone: run scripts\dogfood-claude.ps1 -Install from a clone",
            'exit /b 2',
            ':run',
            'if not defined FAK_BIN set "FAK_BIN=%~dp0fak.exe"',
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -File `"%script%`"$presetArg %*",
            'exit /b %ERRORLEVEL%'
        )
        # CRLF: cmd.exe's `goto` misreads labels in a file with bare LF line ends.
        [System.IO.File]::WriteAllText((Join-Path $bin "$name.cmd"), (($lines -join "`r`n") + "`r`n"), $batchEncoding)
    }
    Write-Say "installed $bin\fak.exe, $bin\fak-dogfood.cmd and $bin\fak-qwen36-claude.cmd"
    $onPath = $false
    foreach ($entry in @(([string]$env:PATH) -split ';')) {
        if ($entry.TrimEnd('\') -ieq $bin.TrimEnd('\')) { $onPath = $true }
    }
    if (-not $onPath) {
        Write-Say "$bin is not on your PATH: add it with  [Environment]::SetEnvironmentVariable('Path', '$bin;' + [Environment]::GetEnvironmentVariable('Path', 'User'), 'User')  and open a new terminal"
    }
    exit 0
}

$claudePath = $null
if ($mode -eq 'interactive' -or $mode -eq 'probe') {
    # An application (claude.exe, npm's claude.cmd), not npm's claude.ps1: Start-Process runs it.
    $claudePath = Find-Application $claudeBin
    if ($null -eq $claudePath) {
        Stop-Dogfood "no Claude Code (``$claudeBin``): npm install -g @anthropic-ai/claude-code, or set FAK_DOGFOOD_CLAUDE_BIN"
    }
}
$fak = Find-Fak

# ---- what it starts, and stops on exit ---------------------------------------------------

$serveLog = $null
$claudeEnvSaved = $null
$exitCode = 0
try {
    New-Item -ItemType Directory -Force -Path (Join-Path $stateRoot 'logs') | Out-Null
    New-Item -ItemType Directory -Force -Path (Join-Path $stateRoot 'fak') | Out-Null
    $logs = Join-Path $stateRoot 'logs'
    $fakState = Join-Path $stateRoot 'fak'
    $runTag = (Get-Stamp "yyyyMMdd'T'HHmmss'Z'") + "-$PID"

    # ---- the model backend ---------------------------------------------------------------

    if ($backend -eq 'ollama') {
        $ollamaHost = $baseRoot -replace '^http://', ''
        if ($null -eq (Get-Json "$baseRoot/api/tags" 3)) {
            $ollama = Find-Application 'ollama'
            if ($null -eq $ollama) {
                Stop-Dogfood "Ollama is not answering at $baseRoot and ``ollama`` is not installed (https://ollama.com), or choose another FAK_DOGFOOD_BACKEND"
            }
            # Ollama's own default window (4,096 tokens) would cut Claude Code's ~20k-token
            # system prompt and tools silently.
            Write-Say "starting ollama serve (context $ollamaContext tokens)"
            $ollamaLog = Join-Path $logs "ollama-$runTag.log"
            $saved = Set-ChildEnv @{ OLLAMA_HOST = $ollamaHost; OLLAMA_CONTEXT_LENGTH = $ollamaContext }
            try {
                $ollamaProcess = Start-Logged $ollama @('serve') (Join-Path $logs "ollama-$runTag.out") $ollamaLog
            } finally {
                Restore-ChildEnv $saved
            }
            if (-not (Wait-Http "$baseRoot/api/tags" 60 $ollamaProcess)) {
                Stop-Dogfood "ollama serve did not come up: $ollamaLog"
            }
        } else {
            Write-Say "using the Ollama at $baseRoot; unless it was started with OLLAMA_CONTEXT_LENGTH=32768 (or more), it cuts Claude Code's prompt to its 4,096-token default"
        }
        $tags = Get-Json "$baseRoot/api/tags" 10
        $want = $model
        if ($want -notmatch ':') { $want = "${want}:latest" }
        $names = @(foreach ($m in @(Get-JsonProperty $tags 'models')) { Get-JsonProperty $m 'name' })
        if ($names -notcontains $want) {
            $ollama = Find-Application 'ollama'
            if ($null -eq $ollama) {
                Stop-Dogfood "Ollama has no model $model, and no ``ollama`` here to pull it"
            }
            Write-Say "pulling $model (once)"
            $saved = Set-ChildEnv @{ OLLAMA_HOST = $ollamaHost }
            try {
                & $ollama pull $model
                $rc = $LASTEXITCODE
            } finally {
                Restore-ChildEnv $saved
            }
            if ($rc -ne 0) { Stop-Dogfood "ollama pull $model failed" }
        }
    } elseif ($backend -eq 'shim' -and [string]::IsNullOrEmpty($baseUrl)) {
        $venv = Join-Path $repo 'target\shim-venv'
        $venvPython = Join-Path $venv 'Scripts\python.exe'
        $requirements = Join-Path $repo 'experiments\agent-live\requirements.txt'
        $shimPython = Get-Setting 'FAK_DOGFOOD_SHIM_PYTHON' $venvPython
        if (-not (Test-Path -LiteralPath $shimPython -PathType Leaf)) {
            Write-Say "installing the shim's Python packages into target\shim-venv (torch, transformers; once)"
            $made = $false
            $py = Find-Application 'py'
            if ($null -ne $py) {
                & $py -3 -m venv $venv
                $made = ($LASTEXITCODE -eq 0)
            }
            if (-not $made) {
                $python = Find-Application 'python'
                if ($null -ne $python) {
                    & $python -m venv $venv
                    $made = ($LASTEXITCODE -eq 0)
                }
            }
            if (-not $made -or -not (Test-Path -LiteralPath $venvPython -PathType Leaf)) {
                Stop-Dogfood 'could not create target\shim-venv: install Python 3 (https://www.python.org/downloads/windows/, with the py launcher)'
            }
            & $venvPython -m pip install -q --disable-pip-version-check -r $requirements
            if ($LASTEXITCODE -ne 0) {
                Stop-Dogfood "could not install the shim's packages (experiments\agent-live\requirements.txt)"
            }
            Copy-Item -LiteralPath $requirements -Destination (Join-Path $venv '.requirements.txt') -Force
            $shimPython = $venvPython
        }
        $shimPython = (Resolve-Path -LiteralPath $shimPython).ProviderPath

        # CUDA when this torch can use it; an NVIDIA GPU that this torch cannot use is named,
        # with how to get a CUDA build (the shim would fail on --device cuda without one).
        $torchPin = 'torch'
        foreach ($line in [System.IO.File]::ReadAllLines($requirements)) {
            if ($line -match '^\s*(torch==\S+)') { $torchPin = $Matches[1] }
        }
        $gpu = $false
        $smi = Find-Application 'nvidia-smi'
        if ($null -ne $smi) {
            $gpu = ((Invoke-Captured $smi @('-L') 30).ExitCode -eq 0)
        }
        $torchCuda = ((Invoke-Captured $shimPython @('-c', 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)') 180).ExitCode -eq 0)
        if ($torchCuda) {
            $device = 'cuda'
            Write-Say 'CUDA: torch sees a GPU, the shim runs on cuda'
        } else {
            $device = 'cpu'
            if ($gpu) {
                Write-Say 'an NVIDIA GPU is here (nvidia-smi) but this torch is a CPU build: the shim runs on cpu'
                Write-Say "a CUDA build of torch may be needed: & '$shimPython' -m pip install --force-reinstall $torchPin --index-url https://download.pytorch.org/whl/cuXXX (cuXXX for your driver: https://pytorch.org/get-started/locally/)"
            } else {
                Write-Say 'no CUDA GPU found (nvidia-smi, torch): the shim runs on cpu'
            }
        }

        $shimLog = Join-Path $logs "shim-$runTag.log"
        Write-Say "starting the local shim with $model on $device (its first start downloads the model)"
        # Port 0: the shim binds a free port and prints it, so nothing can take it in between.
        $shimArgs = @((Join-Path $repo 'experiments\agent-live\local_shim.py'), '--host', '127.0.0.1',
            '--port', '0', '--model', $model, '--device', $device)
        # UTF-8 for the shim's files whatever the code page (PEP 540).
        $saved = Set-ChildEnv @{ PYTHONUTF8 = '1' }
        try {
            $shimProcess = Start-Logged $shimPython $shimArgs "$shimLog.out" $shimLog
        } finally {
            Restore-ChildEnv $saved
        }
        $listening = Wait-Line "$shimLog.out" $shimProcess $timeoutSec 'listening on ([0-9]+)'
        if ($null -eq $listening) { Stop-Dogfood "the shim did not start: $shimLog" }
        $baseRoot = 'http://127.0.0.1:' + $listening.Groups[1].Value
        if (-not (Wait-Http "$baseRoot/v1/models" 30 $shimProcess)) {
            Stop-Dogfood "the shim does not answer: $shimLog"
        }
    }

    if ($provider -eq 'openai') {
        # Does the server list the model? Some servers do not serve /v1/models at all: then
        # only a warning, and the first request tells.
        $models = Get-Json "$baseRoot/v1/models" 10
        if ($null -ne $models) {
            $ids = @(foreach ($m in @(Get-JsonProperty $models 'data')) { Get-JsonProperty $m 'id' })
            $ids = @($ids | Where-Object { -not [string]::IsNullOrEmpty($_) })
            if ([string]::IsNullOrEmpty($model)) {
                if ($ids.Count -eq 0) {
                    Stop-Dogfood "$baseRoot/v1/models lists no model: set FAK_DOGFOOD_MODEL"
                }
                $model = [string]$ids[0]
                Write-Say "model: $model (the first $baseRoot/v1/models lists)"
            } elseif ($ids -notcontains $model) {
                Write-Say "warning: $baseRoot/v1/models does not list $model; the server may answer with whatever it has loaded"
            }
        } else {
            if ([string]::IsNullOrEmpty($model)) {
                Stop-Dogfood "$baseRoot/v1/models did not answer: is the server up? (or set FAK_DOGFOOD_MODEL)"
            }
            Write-Say "warning: $baseRoot/v1/models did not answer; going on with $model"
        }
    }

    # ---- fak serve -----------------------------------------------------------------------

    $policyArgs = @()
    $policyShown = $policy
    if ($policy -eq 'none') {
        $nonePolicy = Join-Path $stateRoot 'none.fak'
        Write-Utf8File $nonePolicy "# FAK_DOGFOOD_POLICY=none: the floor is off, every call and result is allowed.`nallow everything on *;`n"
        $policyArgs = @('--policy', $nonePolicy)
        $policyShown = 'none (every call allowed)'
    } elseif (Test-Path -LiteralPath $policy -PathType Leaf) {
        $policyArgs = @('--policy', $policy)
    } elseif ([string]::IsNullOrEmpty($env:FAK_DOGFOOD_POLICY)) {
        $policyShown = 'the built-in floor'
    } else {
        Stop-Dogfood "no policy at $policy"
    }

    # The port asked for, or the next free one (port 0: fak picks one and says which).
    $servePort = $null
    if ($portNumber -eq 0) {
        $servePort = 0
    } else {
        for ($offset = 0; $offset -lt 20 -and $portNumber + $offset -le 65535; $offset++) {
            if (Test-PortFree ($portNumber + $offset)) {
                $servePort = $portNumber + $offset
                break
            }
        }
        if ($null -eq $servePort) {
            Stop-Dogfood "ports $portNumber to $($portNumber + 19) are all in use: set FAK_DOGFOOD_PORT"
        }
        if ($servePort -ne $portNumber) {
            Write-Say "port $portNumber is in use: taking $servePort"
        }
    }
    $serveLog = Join-Path $logs "fak-serve-$runTag.log"
    $serveOut = Join-Path $logs "fak-serve-$runTag.out"
    $workspace = (Get-Location -PSProvider FileSystem).ProviderPath
    $serveArgs = @('serve', '--addr', "127.0.0.1:$servePort", '--provider', $provider, '--base-url', $baseRoot,
        '--state-dir', $fakState, '--workspace', $workspace)
    if (-not [string]::IsNullOrEmpty($model)) { $serveArgs += @('--model', $model) }
    if (-not [string]::IsNullOrEmpty($maxTokens)) { $serveArgs += @('--max-tokens', $maxTokens) }
    $serveArgs += $policyArgs
    # An empty value removes the variable: the same as the bash script's empty one.
    $saved = Set-ChildEnv ([ordered]@{
            FAK_UPSTREAM_TIMEOUT_SECS    = [string]$timeoutSec
            FAK_PROVIDER_EXTRA_BODY_JSON = $extraBody
        })
    try {
        $serveProcess = Start-Logged $fak $serveArgs $serveOut $serveLog
    } finally {
        Restore-ChildEnv $saved
    }
    $listening = Wait-Line $serveOut $serveProcess 15 'listening on (http://[^\s]+)'
    if ($null -eq $listening) {
        [Console]::Error.WriteLine((Read-SharedText $serveLog))
        Stop-Dogfood "fak serve did not start (its log is above: $serveLog)"
    }
    $url = $listening.Groups[1].Value
    if (-not (Wait-Http "$url/healthz" 30 $serveProcess)) {
        Stop-Dogfood "fak serve does not answer /healthz: $serveLog"
    }
    $modelSaid = ''
    if (-not [string]::IsNullOrEmpty($model)) { $modelSaid = ", $model" }
    Write-Say "fak serve: listening on $url ($backend at $baseRoot$modelSaid; policy: $policyShown)"
    Write-Say "fak's log: $serveLog; its state: $fakState"

    # ---- -Smoke --------------------------------------------------------------------------

    if ($mode -eq 'smoke') {
        $askModel = $model
        if ([string]::IsNullOrEmpty($askModel)) { $askModel = 'claude-sonnet-4-5' }
        $keyValue = $apiKey
        if ([string]::IsNullOrEmpty($keyValue)) { $keyValue = 'none' }
        $headers = @{ 'anthropic-version' = '2023-06-01'; 'x-api-key' = $keyValue }
        $ok = 0
        foreach ($stream in @($false, $true)) {
            $request = [ordered]@{
                model      = $askModel
                max_tokens = 64
                messages   = @(@{ role = 'user'; content = 'Say hello in five words.' })
            }
            if ($stream) {
                $request['stream'] = $true
                Write-Say "POST $url/v1/messages (stream)"
            } else {
                Write-Say "POST $url/v1/messages"
            }
            $body = [System.Text.Encoding]::UTF8.GetBytes((ConvertTo-Json -InputObject $request -Depth 5 -Compress))
            $status = 0
            $answer = ''
            try {
                $response = Invoke-WebRequest -Uri "$url/v1/messages" -Method Post -UseBasicParsing `
                    -ContentType 'application/json' -Headers $headers -Body $body -TimeoutSec $timeoutSec
                $status = [int]$response.StatusCode
                $answer = [System.Text.Encoding]::UTF8.GetString($response.RawContentStream.ToArray())
            } catch {
                $failure = $_
                $webResponse = Get-JsonProperty $failure.Exception 'Response'
                if ($null -ne $webResponse) { $status = [int]$webResponse.StatusCode }
                if ($null -ne $failure.ErrorDetails -and -not [string]::IsNullOrEmpty($failure.ErrorDetails.Message)) {
                    $answer = $failure.ErrorDetails.Message
                } else {
                    $answer = $failure.Exception.Message
                }
            }
            Write-Output $answer
            Write-Output "HTTP $status"
            if ($stream) {
                if ($status -ne 200 -or -not $answer.Contains('event: message_stop')) { $ok = 1 }
            } else {
                if ($status -ne 200 -or -not $answer.Contains('"type":"message"')) { $ok = 1 }
            }
        }
        if ($ok -eq 0) {
            Write-Say 'smoke ok: plain and streaming answers through fak'
        } else {
            Write-Say "smoke FAILED: see the answers above and $serveLog"
        }
        $exitCode = $ok
        exit $exitCode
    }

    # ---- Claude Code ---------------------------------------------------------------------

    if (-not [string]::IsNullOrEmpty($claudeConfig)) {
        New-Item -ItemType Directory -Force -Path $claudeConfig | Out-Null
        # A new config directory would start with the onboarding screens and ask whether to
        # use the key: mark both done, once, so the first run goes straight to work.
        $seed = Join-Path $claudeConfig '.claude.json'
        if (-not (Test-Path -LiteralPath $seed -PathType Leaf)) {
            $approved = @()
            if (-not [string]::IsNullOrEmpty($apiKey)) {
                $approved = @($apiKey.Substring([Math]::Max(0, $apiKey.Length - 20)))
            }
            $onboarding = [ordered]@{
                hasCompletedOnboarding = $true
                customApiKeyResponses  = [ordered]@{ approved = $approved; rejected = @() }
            }
            Write-Utf8File $seed ((ConvertTo-Json -InputObject $onboarding -Depth 5) + "`n")
        }
    }

    # Claude Code's environment: what it needs, and no other credential of this session.
    $childVars = [ordered]@{ ANTHROPIC_AUTH_TOKEN = $null; ANTHROPIC_CUSTOM_HEADERS = $null }
    if ([string]::IsNullOrEmpty($apiKey)) { $childVars['ANTHROPIC_API_KEY'] = $null }
    $claudeVars = Get-ClaudeEnv $url
    foreach ($name in @($claudeVars.Keys)) { $childVars[$name] = $claudeVars[$name] }
    if ($debugClaude -eq '1') { $claudeArgList = @('--debug') + $claudeArgList }

    if ($mode -eq 'interactive') {
        Write-Say 'starting Claude Code (/exit to leave; fak and the backend stop with it)'
        # In this console, so Claude Code reads the keyboard (Ctrl-C included) itself.
        $claudeEnvSaved = Set-ChildEnv $childVars
        try {
            & $claudePath @claudeArgList
            $exitCode = $LASTEXITCODE
        } finally {
            Restore-ChildEnv $claudeEnvSaved
            $claudeEnvSaved = $null
        }
        exit $exitCode
    }

    # -Probe: headless, then a witness of what fak decided during the run.
    $seqBefore = 0
    $last = Invoke-Captured $fak @('audit', 'tail', '-n', '1', '--json', '--state-dir', $fakState)
    foreach ($line in @($last.Stdout -split "`r?`n")) {
        if ($line -match '^\s*\{') {
            try {
                $seq = Get-JsonProperty (ConvertFrom-Json -InputObject $line) 'seq'
                if ($null -ne $seq) { $seqBefore = [long]$seq }
            } catch {
                # No row to start after: 0.
            }
        }
    }
    $startedAt = Get-Stamp "yyyy-MM-dd'T'HH':'mm':'ss'Z'"
    $claudeOut = Join-Path $logs "claude-$runTag.json"
    $noInput = Join-Path $logs "claude-$runTag.stdin"
    Write-Utf8File $noInput ''
    Write-Say ('claude -p ' + (ConvertTo-Json -InputObject $Probe -Compress))
    # In the background with a polling wait, so Ctrl-C reaches this script at once and the
    # `finally` below stops Claude Code too.
    $probeArgs = @('-p', $Probe, '--output-format', 'json') + $claudeArgList
    $claudeEnvSaved = Set-ChildEnv $childVars
    try {
        # Claude Code's stderr stays on this console; its stdout (the JSON) goes to a file.
        $spec = @{
            FilePath               = $claudePath
            ArgumentList           = (Join-NativeArguments $probeArgs)
            RedirectStandardOutput = $claudeOut
            RedirectStandardInput  = $noInput
            NoNewWindow            = $true
            PassThru               = $true
        }
        $claudeProcess = Start-Process @spec
        $null = $claudeProcess.Handle
        $started.Add($claudeProcess)
    } finally {
        Restore-ChildEnv $claudeEnvSaved
        $claudeEnvSaved = $null
    }
    while (-not $claudeProcess.WaitForExit(200)) { }
    $claudeProcess.WaitForExit()
    $rc = [int]$claudeProcess.ExitCode
    $finishedAt = Get-Stamp "yyyy-MM-dd'T'HH':'mm':'ss'Z'"
    # fak writes an audit row before it answers, so every verdict of the run is in by now.
    $rows = Invoke-Captured $fak @('audit', 'tail', '--after', [string]$seqBefore, '--json', '--state-dir', $fakState)
    $verdicts = @(foreach ($line in @($rows.Stdout -split "`r?`n")) {
            if ([string]::IsNullOrWhiteSpace($line)) { continue }
            try {
                ConvertFrom-Json -InputObject $line
            } catch {
                $line
            }
        })
    $claudeText = Read-SharedText $claudeOut
    $claudeJson = $claudeText
    $trimmed = $claudeText.Trim()
    if ($trimmed.StartsWith('{') -and $trimmed.EndsWith('}')) {
        try {
            $claudeJson = ConvertFrom-Json -InputObject $trimmed
        } catch {
            $claudeJson = $claudeText
        }
    }
    # Another launcher sharing the state directory writes rows too: keep the rows of this run's
    # conversation, the trace fak gave Claude Code's session id (when Claude Code printed one).
    $session = $null
    if ($claudeJson -isnot [string]) { $session = Get-JsonProperty $claudeJson 'session_id' }
    if (-not [string]::IsNullOrEmpty([string]$session)) {
        $verdicts = @($verdicts | Where-Object { $_ -isnot [string] -and (Get-JsonProperty $_ 'trace') -eq $session })
    }
    $counts = [ordered]@{}
    foreach ($v in @('ALLOW', 'DENY', 'TRANSFORM', 'QUARANTINE', 'ESCALATE')) {
        $n = @($verdicts | Where-Object { $_ -isnot [string] -and (Get-JsonProperty $_ 'verdict') -eq $v }).Count
        if ($n -gt 0) { $counts[$v] = $n }
    }
    $version = (Invoke-Captured $fak @('--version')).Stdout.Trim()
    New-Item -ItemType Directory -Force -Path $witnessDir | Out-Null
    $witness = Join-Path $witnessDir "witness-$runTag.json"
    $record = [ordered]@{
        witness     = 'fak-dogfood-probe/v1'
        started     = $startedAt
        finished    = $finishedAt
        prompt      = $Probe
        backend     = $backend
        base_url    = $baseRoot
        model       = $model
        policy      = $policyShown
        fak_version = $version
        claude_exit = $rc
        claude      = $claudeJson
        counts      = $counts
        verdicts    = [object[]]$verdicts
    }
    Write-Utf8File $witness ((ConvertTo-Json -InputObject $record -Depth 20) + "`n")
    Write-Output $claudeText
    $countsShown = @(foreach ($v in @($counts.Keys)) { "`"$v`": $($counts[$v])" }) -join ', '
    Write-Say "fak's verdicts during the run: {$countsShown}"
    Write-Say "witness: $witness"
    $exitCode = $rc
    exit $exitCode
} finally {
    # Ctrl-C and `exit` come here too.
    Restore-ChildEnv $claudeEnvSaved
    foreach ($process in @($started)) {
        Stop-Tree $process
    }
    if ($debugClaude -eq '1' -and $null -ne $serveLog -and (Test-Path -LiteralPath $serveLog -PathType Leaf)) {
        Write-Say "fak's log: $serveLog"
    }
}
