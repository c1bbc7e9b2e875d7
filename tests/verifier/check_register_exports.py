#!/usr/bin/env python3
"""Parses the register exports back with independent parsers (Python standard library only).

    check_register_exports.py register.json register.csv register.html [openapi.json]

Exits non-zero, naming the problem, when the JSON lacks the register's members or does not
match the OpenAPI document's `Register` schema (when one is given), when a CSV
row does not have the header's columns (or the BOM is missing), or when the HTML is not
well-formed (every element closed, properly nested) or lacks one sheet per activity.
"""
import csv
import io
import json
import sys
from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class WellFormed(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors, self.sheets, self.ids = [], [], 0, set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "sheet" in (attrs.get("class") or "").split():
            self.sheets += 1
            if attrs.get("id"):
                self.ids.add(attrs["id"])
        if tag not in VOID:
            self.stack.append((tag, self.getpos()))

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes "
                               f"{self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()


TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
         "integer": int, "number": (int, float)}


def validate(value, schema, root, path="$"):
    """The JSON Schema subset the OpenAPI document uses: $ref, type, enum, required,
    properties, items. Returns the first problem, or None."""
    if "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        return validate(value, node, root, path)
    if "enum" in schema and value not in schema["enum"]:
        return f"{path}: {value!r} is not one of {schema['enum']}"
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(value, TYPES[t]) and not (t in ("integer", "number") and
                                                        isinstance(value, bool))
                   for t in types):
            return f"{path}: expected {types}, got {type(value).__name__}"
    if isinstance(value, dict):
        for member in schema.get("required", []):
            if member not in value:
                return f"{path}: lacks required member {member}"
        for member, sub in schema.get("properties", {}).items():
            if member in value:
                problem = validate(value[member], sub, root, f"{path}.{member}")
                if problem:
                    return problem
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            problem = validate(item, schema["items"], root, f"{path}[{i}]")
            if problem:
                return problem
    return None


def fail(message):
    print("register export check failed:", message)
    sys.exit(1)


def main(json_path, csv_path, html_path, openapi_path=None):
    doc = json.load(open(json_path, encoding="utf-8"))
    if openapi_path:
        openapi = json.load(open(openapi_path, encoding="utf-8"))
        problem = validate(doc, {"$ref": "#/components/schemas/Register"}, openapi)
        if problem:
            fail("JSON against the OpenAPI Register schema: " + problem)
    for member in ("organisation", "content_hash", "activities"):
        if member not in doc:
            fail(f"JSON lacks {member}")
    ids = []
    for a in doc["activities"]:
        for member in ("id", "name", "purposes", "legal_basis", "data", "retention"):
            if member not in a:
                fail(f"activity {a.get('id')} lacks {member}")
        ids.append(a["id"])

    raw = open(csv_path, "rb").read()
    if not raw.startswith(b"\xef\xbb\xbf"):
        fail("CSV has no UTF-8 BOM")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    header = rows[0]
    if header[:3] != ["id", "reference", "name"]:
        fail(f"CSV header is {header}")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            fail(f"CSV row {n} has {len(row)} cells, the header {len(header)}")
    if [r[0] for r in rows[1:]] != ids:
        fail("CSV rows are not the JSON activities, in order")

    parser = WellFormed()
    parser.feed(open(html_path, encoding="utf-8").read())
    parser.close()
    if parser.errors:
        fail("HTML: " + "; ".join(parser.errors[:5]))
    if parser.stack:
        fail(f"HTML: unclosed {parser.stack[-5:]}")
    if parser.sheets != len(ids) + 1 or parser.ids != set(ids):
        fail(f"HTML has {parser.sheets} sheets for {len(ids)} activities + organisation")
    print(f"register exports ok: {len(ids)} activities in JSON, CSV and HTML")


if __name__ == "__main__":
    main(*sys.argv[1:5])
