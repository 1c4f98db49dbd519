#!/usr/bin/env python3
"""Validates provgate.dev/policy-input/v1 documents against
docs/policy-input.schema.json (JSON Schema draft 2020-12).

    python3 -m pip install jsonschema
    python3 docs/validate_policy_inputs.py            # the example and every testdata input
    python3 docs/validate_policy_inputs.py FILE...    # given documents

Run from the repository root. Exits 1 when a document is invalid.
"""
import glob
import json
import sys

from jsonschema import Draft202012Validator, FormatChecker

schema = json.load(open("docs/policy-input.schema.json"))
Draft202012Validator.check_schema(schema)
validator = Draft202012Validator(schema, format_checker=FormatChecker())
files = sys.argv[1:] or (["docs/examples/policy-input.json"] + sorted(glob.glob("policies/*/testdata/*.json")))
errors = 0
for path in files:
    with open(path) as f:
        doc = json.load(f)
    for e in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path)):
        errors += 1
        where = "/".join(str(p) for p in e.absolute_path) or "(root)"
        print(f"{path}: {where}: {e.message}")
print(f"{len(files)} document(s), {errors} error(s)")
sys.exit(1 if errors else 0)
