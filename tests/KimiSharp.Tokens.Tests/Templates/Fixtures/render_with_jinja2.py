#!/usr/bin/env python3
"""Regenerates the expected outputs the C# chat-template tests compare against, using Python Jinja2.

Usage:  python3 render_with_jinja2.py            (from any directory; needs jinja2 >= 3.1, tested with 3.1.6)

It mimics the Jinja environment Hugging Face transformers builds for apply_chat_template
(transformers/utils/chat_template_utils.py):
  * trim_blocks=True, lstrip_blocks=True, extension jinja2.ext.loopcontrols;
  * the `tojson` filter replaced by json.dumps(x, ensure_ascii=False, indent=..., separators=..., sort_keys=...);
  * globals raise_exception(message) -> jinja2.exceptions.TemplateError and strftime_now(format);
  * a {% generation %}...{% endgeneration %} block that renders its body (transformers' AssistantTracker
    extension, minus the index bookkeeping used for assistant masks).
One deliberate difference: transformers uses ImmutableSandboxedEnvironment, which refuses list.append/pop.
The Kimi templates in this folder (llama.cpp's copies) build a queue of tool-call ids with append/pop, so they
only render under a mutable sandbox; we use SandboxedEnvironment, as the C# interpreter does by default.

Render variables follow transformers: messages, tools (None when absent), documents=None,
add_generation_prompt, the special tokens bos_token/eos_token, plus the conversation's "variables".
Like recent Kimi tokenizers (deep_sort_dict in tokenization_kimi.py), `tools` has its dict keys sorted
recursively before rendering when the template is a Kimi template (contains "<|im_middle|>"); the C#
ChatTemplate does the same by default.

strftime_now uses a fixed clock (2025-01-02 03:04:05.678901, naive local time) so outputs are reproducible;
the C# tests pass the same instant through a fake TimeProvider.

Outputs:
  expected/<template stem>/<conversation stem>.txt        rendered text, byte for byte (UTF-8, no added newline)
  expected/<template stem>/<conversation stem>.error.json {"type": ..., "message": ...} when Jinja2 raises
  ../../../KimiSharp.Jinja.Tests/Fixtures/snippets.expected.json
                                                          every case of snippets.json (beside it) with its output or error
"""

import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import SandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_NOW = datetime.datetime(2025, 1, 2, 3, 4, 5, 678901)
SPECIAL_TOKENS = {"bos_token": "[BOS]", "eos_token": "[EOS]"}
KIMI_MARKER = "<|im_middle|>"


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def strftime_now(format):
    return FIXED_NOW.strftime(format)


class GenerationBlock(jinja2.ext.Extension):
    """{% generation %} as transformers parses it: a call block whose body is rendered unchanged."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    env = SandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[GenerationBlock, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def deep_sort_dict(obj):
    if isinstance(obj, dict):
        return {k: deep_sort_dict(v) for k, v in sorted(obj.items())}
    if isinstance(obj, list):
        return [deep_sort_dict(item) for item in obj]
    return obj


def read_text(path):
    # newline="" keeps \r\n as written; Jinja2 normalises newlines itself.
    with open(path, encoding="utf-8", newline="") as f:
        return f.read()


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def error_record(e):
    return {"type": type(e).__name__, "message": str(e)}


def render_conversations(env):
    template_dir = os.path.join(HERE, "templates")
    conv_dir = os.path.join(HERE, "conversations")
    expected_dir = os.path.join(HERE, "expected")
    count = 0
    for tname in sorted(os.listdir(template_dir)):
        if not tname.endswith(".jinja"):
            continue
        source = read_text(os.path.join(template_dir, tname))
        template = env.from_string(source)
        is_kimi = KIMI_MARKER in source
        out_dir = os.path.join(expected_dir, tname[: -len(".jinja")])
        if os.path.isdir(out_dir):
            for old in os.listdir(out_dir):
                os.remove(os.path.join(out_dir, old))
        for cname in sorted(os.listdir(conv_dir)):
            if not cname.endswith(".json"):
                continue
            with open(os.path.join(conv_dir, cname), encoding="utf-8") as f:
                conv = json.load(f)
            tools = conv.get("tools")
            if tools is not None and is_kimi:
                tools = deep_sort_dict(tools)
            variables = dict(SPECIAL_TOKENS)
            variables.update(conv.get("variables", {}))
            variables.update(
                messages=conv["messages"],
                tools=tools,
                documents=None,
                add_generation_prompt=conv.get("add_generation_prompt", True),
            )
            stem = cname[: -len(".json")]
            try:
                text = template.render(**variables)
                write_text(os.path.join(out_dir, stem + ".txt"), text)
            except Exception as e:  # the C# side must fail the same way
                write_text(os.path.join(out_dir, stem + ".error.json"), json.dumps(error_record(e), ensure_ascii=False, indent=2) + "\n")
            count += 1
    return count


SNIPPETS_DIR = os.path.join(HERE, "..", "..", "..", "KimiSharp.Jinja.Tests", "Fixtures")


def render_snippets(env):
    with open(os.path.join(SNIPPETS_DIR, "snippets.json"), encoding="utf-8") as f:
        snippets = json.load(f)
    results = []
    for case in snippets:
        record = {"name": case["name"], "template": case["template"]}
        if "vars" in case:
            record["vars"] = case["vars"]
        try:
            record["expected"] = env.from_string(case["template"]).render(**case.get("vars", {}))
        except Exception as e:
            record["error"] = error_record(e)
        results.append(record)
    write_text(os.path.join(SNIPPETS_DIR, "snippets.expected.json"), json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    return len(results)


def main():
    print(f"jinja2 {jinja2.__version__}, python {sys.version.split()[0]}")
    env = make_env()
    print(f"{render_conversations(env)} template x conversation renders")
    print(f"{render_snippets(env)} snippets")


if __name__ == "__main__":
    main()
