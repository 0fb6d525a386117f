"""scripts/dogfood-claude.ps1, the Windows launcher, where no PowerShell runs: parsed with
tree-sitter's PowerShell grammar (no ERROR or MISSING node, nothing only PowerShell 7 reads), and
held to the bash launcher it mirrors: the FAK_DOGFOOD_* variables, the switches, the Qwen3.6
preset, Claude Code's environment and the witness's fields."""

import re

import pytest
import tree_sitter
import tree_sitter_powershell

from conftest import ROOT

PS1 = ROOT / "scripts" / "dogfood-claude.ps1"
SH = ROOT / "scripts" / "dogfood-claude.sh"

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def parse(source):
    return PARSER.parse(source)


def walk(node):
    yield node
    for child in node.children:
        yield from walk(child)


def problems(tree, source, limit=5):
    """The first ERROR and MISSING nodes, as `line:column: what`."""
    out = []
    for node in walk(tree.root_node):
        if node.type == "ERROR" or node.is_missing:
            line, column = node.start_point
            text = source[node.start_byte:node.end_byte].decode("utf-8", "replace")
            what = "missing %r" % node.type if node.is_missing else "error at %r" % text[:80]
            out.append("%d:%d: %s" % (line + 1, column + 1, what))
            if len(out) == limit:
                break
    return out


def text(node):
    return node.text.decode("utf-8")


@pytest.fixture(scope="module")
def source():
    return PS1.read_bytes()


@pytest.fixture(scope="module")
def tree(source):
    return parse(source)


@pytest.fixture(scope="module")
def bash():
    return SH.read_text()


def test_parses_without_errors(tree, source):
    found = problems(tree, source)
    assert not found, "scripts/dogfood-claude.ps1 does not parse:\n" + "\n".join(found)
    assert not tree.root_node.has_error


BREAKS = {
    "an unbalanced brace": ("if ($Help) {\n", "if ($Help) {\n    if ($mode) {\n"),
    "an unterminated string": ("Write-Say 'building fak (cargo build --release)'",
                               "Write-Say 'building fak (cargo build --release)"),
    "an unterminated double-quoted string": ('Write-Say "pulling $model (once)"',
                                             'Write-Say "pulling $model (once)'),
    "an unbalanced parenthesis": ("if ($modes.Count -gt 1) {", "if (($modes.Count -gt 1) {"),
    "PowerShell 7's ?? operator": ("$preset = $env:FAK_DOGFOOD_PRESET",
                                   "$preset = $env:FAK_DOGFOOD_PRESET ?? ''"),
}


@pytest.mark.parametrize("what", sorted(BREAKS))
def test_the_parser_rejects_a_broken_copy(what, source, tmp_path):
    """The check above can fail: the same script with one mistake put in does not parse."""
    old, new = BREAKS[what]
    script = source.decode("utf-8")
    assert script.count(old) == 1, "the script changed: pick another line to break (%r)" % old
    broken = tmp_path / "broken.ps1"
    broken.write_text(script.replace(old, new))
    data = broken.read_bytes()
    assert problems(parse(data), data), "a copy with %s parses cleanly" % what


def test_windows_powershell_5_1_can_read_it(tree, source):
    script = source.decode("utf-8")
    # Windows PowerShell 5.1 reads a script without a BOM in the ANSI code page.
    assert source.isascii(), "non-ASCII in the script: %r" % sorted({c for c in script if ord(c) > 127})
    assert script.startswith("#Requires -Version 5.1\n")
    assert "\nSet-StrictMode -Version Latest\n" in script
    assert "\n$ErrorActionPreference = 'Stop'\n" in script
    # Comment-based help: the first block comment, before the param block.
    first = tree.root_node.children
    help_ = next(n for n in first if n.type == "comment" and text(n).startswith("<#"))
    param = next(n for n in first if n.type == "param_block")
    assert help_.start_byte < param.start_byte
    for keyword in (".SYNOPSIS", ".DESCRIPTION", ".PARAMETER Probe", ".EXAMPLE"):
        assert keyword in text(help_)
    # PowerShell 7's pipeline chains (&&, ||) parse here but not in 5.1 (??, ?. and the
    # ternary do not parse at all: the parse above rejects them).
    chains = [n for n in walk(tree.root_node) if n.type in ("&&", "||")]
    assert not chains, ["%d:%d" % (n.start_point[0] + 1, n.start_point[1] + 1) for n in chains]


def test_no_drive_qualified_variable_by_mistake(tree):
    """`"$name: ..."` reads a variable `name:` of drive `name` in PowerShell (`${name}:` is meant)."""
    scopes = ("env", "script", "global", "local", "private", "using", "variable", "function")
    bad = []
    for node in walk(tree.root_node):
        if node.type.startswith("expandable_"):
            for m in re.finditer(r"(?<!`)\$(\w+):(?!:)", text(node)):
                if m.group(1).lower() not in scopes:
                    bad.append("%d: %s" % (node.start_point[0] + 1, m.group(0)))
    assert not bad


def parameters(tree):
    """The script's parameters: name -> (types, attribute texts)."""
    param = next(n for n in tree.root_node.children if n.type == "param_block")
    out = {}
    for p in (n for n in walk(param) if n.type == "script_parameter"):
        name = next(text(c) for c in p.children if c.type == "variable").lstrip("$")
        attrs = [n for n in walk(p) if n.type == "attribute"]
        types = [text(n).strip("[]") for a in attrs for n in a.children if n.type == "type_literal"]
        out[name] = (types, [text(a) for a in attrs])
    return out


def test_the_switches_of_the_bash_flags(tree):
    params = parameters(tree)
    assert params["Probe"][0] == ["string"]
    for name in ("Smoke", "PrintEnv", "Install", "Qwen36", "Help"):
        assert name in params, "no -%s in the param block" % name
        assert params[name][0] == ["switch"], name
    rest = [name for name, (_, attrs) in params.items()
            if any(re.search(r"ValueFromRemainingArguments\s*=\s*\$true", a) for a in attrs)]
    assert len(rest) == 1, "one parameter takes the arguments for Claude Code: %r" % rest


def test_every_variable_the_bash_script_reads(bash, source):
    script = source.decode("utf-8")
    names = set(re.findall(r"\bFAK_DOGFOOD_[A-Z_]+\b", bash)) | {"FAK_BIN"}
    assert len(names) >= 12, sorted(names)
    missing = sorted(n for n in names if not re.search(r"\b%s\b" % n, script))
    assert not missing, "the bash script reads these, the .ps1 does not name them: %s" % missing


def test_the_qwen36_preset(bash, source):
    script = source.decode("utf-8")
    block = bash.split('if [ "$preset" = qwen36 ]; then', 1)[1].split("elif", 1)[0]
    body = re.search(r"qwen36_body='([^']*)'", block).group(1)
    preset = {}
    for name, value in re.findall(r'\$\{(FAK_DOGFOOD_[A-Z_]+):=([^}]*)\}', block):
        preset[name] = body if value == "$qwen36_body" else value
    assert set(preset) == {"FAK_DOGFOOD_BACKEND", "FAK_DOGFOOD_BASE_URL", "FAK_DOGFOOD_MODEL",
                           "FAK_DOGFOOD_TIMEOUT_S", "FAK_DOGFOOD_PROVIDER_EXTRA_BODY_JSON"}
    for name, value in preset.items():
        assert re.search(r"\b%s\s*=\s*'%s'" % (name, re.escape(value)), script), \
            "the preset's %s=%s is not in the .ps1" % (name, value)


def function_text(tree, name):
    for node in walk(tree.root_node):
        if node.type == "function_statement":
            if any(c.type == "function_name" and text(c) == name for c in node.children):
                return text(node)
    raise AssertionError("no function %s in the .ps1" % name)


def test_claude_code_gets_the_same_environment(bash, tree, source):
    body = bash.split("claude_env() {", 1)[1].split("\n}\n", 1)[0]
    names = re.findall(r'echo "([A-Z_]+)=', body)
    assert "ANTHROPIC_BASE_URL" in names and "DISABLE_AUTOUPDATER" in names, names
    fn = function_text(tree, "Get-ClaudeEnv")
    missing = [n for n in names if "'%s'" % n not in fn]
    assert not missing, "Get-ClaudeEnv does not set %s" % missing
    # And the variables the bash script takes out of Claude Code's environment.
    script = source.decode("utf-8")
    for unset in re.findall(r"-u ([A-Z_]+)", bash):
        assert re.search(r"\b%s\s*=\s*\$null" % unset, script) or \
            re.search(r"\['%s'\]\s*=\s*\$null" % unset, script), unset


def test_the_witness_has_the_same_fields(bash, tree):
    block = bash.split("witness=$witness_dir/witness-$run_tag.json", 1)[1].split('} >"$witness"', 1)[0]
    fields = re.findall(r'"([a-z_]+)": ', block)
    assert fields[:2] == ["witness", "started"] and "verdicts" in fields, fields
    for node in walk(tree.root_node):
        if node.type == "hash_literal_body":
            keys = [text(k) for e in node.children if e.type == "hash_entry"
                    for k in e.children if k.type == "key_expression"]
            if "witness" in keys:
                assert keys == fields, "the witness's fields differ from the bash script's"
                assert "'fak-dogfood-probe/v1'" in text(node)
                return
    raise AssertionError("no witness record in the .ps1")
