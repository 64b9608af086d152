#!/usr/bin/env python3
"""Regenerates the expected Kimi K2.5 template renders the C# tests compare against, using Python Jinja2.

Usage:  python3 generate.py PATH/TO/tool_declaration_ts.py      (needs jinja2 >= 3.1; tested with Debian's 3.1.6)

The template is the one the tokenizer ships, src/KimiSharp.Tokens/Templates/Kimi-K2.5.jinja (see README.md here for
where it came from). It is rendered the way the Kimi K2.5 tokenizer's apply_chat_template renders it:
  * the Jinja environment of ../render_with_jinja2.py (transformers' settings, mutable sandbox);
  * tools deep-sorted (every dict's keys, recursively), then encoded with encode_tools_to_typescript_style from the
    given tool_declaration_ts.py; the result is passed as tools_ts_str, and when encoding raises it is left unset so
    that the template falls back to JSON (the tokenizer prints a warning and does the same);
  * messages, tools (None when absent), documents=None, add_generation_prompt, bos/eos tokens, plus the case's
    "variables" (for example thinking=false).

Cases: every conversations/*.json beside this script, and every ../conversations/*.json shared with the other
template fixtures (their names must not collide).
Outputs: expected/<case>.txt (the render, UTF-8, byte for byte) or expected/<case>.error.json when Jinja2 raises.
"""

import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.dirname(HERE)
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", "..", ".."))
TEMPLATE = os.path.join(REPO, "src", "KimiSharp.Tokens", "Templates", "Kimi-K2.5.jinja")

sys.path.insert(0, FIXTURES)
from render_with_jinja2 import SPECIAL_TOKENS, deep_sort_dict, error_record, make_env, read_text, write_text  # noqa: E402


def load_encoder(path):
    spec = importlib.util.spec_from_file_location("tool_declaration_ts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.encode_tools_to_typescript_style


def case_files():
    files = {}
    for directory in (os.path.join(HERE, "conversations"), os.path.join(FIXTURES, "conversations")):
        for name in sorted(os.listdir(directory)):
            if name.endswith(".json"):
                stem = name[: -len(".json")]
                if stem in files:
                    sys.exit(f"case name {stem} appears twice")
                files[stem] = os.path.join(directory, name)
    return files


def main():
    import jinja2

    encode = load_encoder(sys.argv[1])
    template = make_env().from_string(read_text(TEMPLATE))
    expected_dir = os.path.join(HERE, "expected")
    os.makedirs(expected_dir, exist_ok=True)
    for old in os.listdir(expected_dir):
        os.remove(os.path.join(expected_dir, old))

    files = case_files()
    for stem, path in files.items():
        with open(path, encoding="utf-8") as f:
            conv = json.load(f)
        tools = conv.get("tools")
        variables = dict(SPECIAL_TOKENS)
        variables.update(conv.get("variables", {}))
        if tools is not None:
            tools = deep_sort_dict(tools)
        if tools:
            try:
                variables["tools_ts_str"] = encode(tools)
            except Exception as e:  # as tokenization_kimi.py: warn and render JSON
                print(f"{stem}: TypeScript encoding raises {type(e).__name__}; the template falls back to JSON", file=sys.stderr)
        variables.update(messages=conv["messages"], tools=tools, documents=None,
                         add_generation_prompt=conv.get("add_generation_prompt", True))
        try:
            write_text(os.path.join(expected_dir, stem + ".txt"), template.render(**variables))
        except Exception as e:
            write_text(os.path.join(expected_dir, stem + ".error.json"), json.dumps(error_record(e), ensure_ascii=False, indent=2) + "\n")
    print(f"jinja2 {jinja2.__version__}: {len(files)} Kimi K2.5 renders")


if __name__ == "__main__":
    main()
