"""Writes expected.json from cases.json by running Moonshot's published tool_declaration_ts.py.

Usage: python3 generate.py PATH/TO/tool_declaration_ts.py

Each case's tools are first deep-sorted (every dict's keys, recursively) the way the Kimi K2.5 tokenizer's
apply_chat_template does before it calls encode_tools_to_typescript_style. A case whose encoding raises is
recorded as null: the C# encoder must refuse it too (TryEncode returns false).

The committed expected.json came from a line-by-line transcription of a public copy of the module (the copy says
it was taken from kimi-k2.5-hf-tokenizer/tool_declaration_ts.py); rerunning this script with the file from the
Kimi-K2.5 Hugging Face repository must leave expected.json unchanged.
"""
import importlib.util
import json
import pathlib
import sys


def deep_sort(value):
    if isinstance(value, dict):
        return {k: deep_sort(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [deep_sort(v) for v in value]
    return value


def main():
    spec = importlib.util.spec_from_file_location("tool_declaration_ts", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    here = pathlib.Path(__file__).parent
    cases = json.loads((here / "cases.json").read_text(encoding="utf-8"))
    expected = {}
    for case in cases:
        try:
            expected[case["name"]] = module.encode_tools_to_typescript_style(deep_sort(case["tools"]))
        except Exception as error:  # the tokenizer catches everything and falls back to JSON
            print(f"{case['name']}: raises {type(error).__name__}: {error}", file=sys.stderr)
            expected[case["name"]] = None
    (here / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
