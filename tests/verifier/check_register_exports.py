#!/usr/bin/env python3
"""Parses the register exports back with independent parsers (Python standard library only)
and compares each with the JSON export, activity by activity, element by element.

    check_register_exports.py register.json register.csv register.md register.html [openapi.json]

Exits non-zero, naming the problem, when the JSON lacks the register's members or does not
match the OpenAPI document's `Register` schema (when one is given), when a CSV row does not
have the header's columns (or the BOM is missing), when the HTML is not well-formed (every
element closed, properly nested) or lacks one sheet per activity, or when any Art. 30(1)
element the JSON holds for an activity (purposes, sub-purposes, joint controllers, categories
of data subjects and data, recipients, transfers and their safeguards, retention, security
measures, DPIA reference) is missing from its CSV row, its Markdown section or its HTML sheet.
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
        self.text, self.current = {}, None  # sheet id -> its text

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "sheet" in (attrs.get("class") or "").split():
            self.sheets += 1
            self.current = attrs.get("id")
            if attrs.get("id"):
                self.ids.add(attrs["id"])
                self.text[attrs["id"]] = ""
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

    def handle_data(self, data):
        if self.current in self.text:
            self.text[self.current] += data + " "


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


def words(value):
    """The strings an element of the register holds, as a reader would look for them."""
    if isinstance(value, dict):
        out = []
        for v in value.values():
            out += words(v)
        return out
    if isinstance(value, list):
        out = []
        for v in value:
            out += words(v)
        return out
    if isinstance(value, str):
        return [value]
    return []


def normal(text):
    return " ".join(text.replace("_", " ").lower().split())


# Register vocabulary an export may show by its label instead of the word itself.
LABELS = {"access control", "traceability", "encryption", "backups", "staff training",
          "separation of duties", "merkle tree", "signed checkpoints", "customers", "prospects",
          "members", "staff", "business contacts", "consent", "contract", "legal obligation",
          "legitimate interests"}


def elements(activity):
    """Art. 30(1) elements of one activity: (name, the strings each export must show)."""
    out = []
    for member in ("purposes", "sub_purposes", "joint_controllers", "data_subjects",
                   "recipients", "transfers", "retention", "dpia"):
        if member in activity and activity[member] is not None:
            out.append((member, words(activity[member])))
    data = activity.get("data") or {}
    out.append(("data", words(data.get("fields", []))))
    security = activity.get("security")
    out.append(("security", words(security) if security else []))
    out.append(("legal_basis", [activity.get("legal_basis", "")]))
    return out


def check_contains(where, text, activity, lang_labelled=False):
    hay = normal(text)
    for element, strings in elements(activity):
        for s in strings:
            if not s or normal(s) in hay:
                continue
            if lang_labelled and (normal(s) in LABELS or element == "legal_basis"):
                continue  # shown by its label in the export's language
            fail(f"{where}: activity {activity['id']}: {element} '{s}' is missing")


def main(json_path, csv_path, md_path, html_path, openapi_path=None, lang="en"):
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
    by_id = {a["id"]: a for a in doc["activities"]}
    labelled = lang != "en"

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
    for row in rows[1:]:
        cells = dict(zip(header, row))
        activity = by_id[row[0]]
        for element, strings in elements(activity):
            column = "data" if element == "data" else element
            if column not in cells:
                fail(f"CSV has no column {column}")
            for s in strings:
                if not s or normal(s) in normal(cells[column]):
                    continue
                if labelled and (normal(s) in LABELS or element == "legal_basis"):
                    continue  # shown by its label in the export's language
                fail(f"CSV: activity {row[0]}: column {column} lacks '{s}'")

    md = open(md_path, encoding="utf-8").read()
    sections = md.split("\n## ")[1:]
    md_by_id = {}
    for section in sections:
        head = section.split("\n", 1)[0]
        if "{#" in head:
            md_by_id[head[head.index("{#") + 2:head.index("}")]] = section
    if set(md_by_id) != set(ids):
        fail(f"Markdown has sections for {sorted(md_by_id)}, not the JSON activities")
    for i in ids:
        check_contains("Markdown", md_by_id[i], by_id[i], labelled)

    parser = WellFormed()
    parser.feed(open(html_path, encoding="utf-8").read())
    parser.close()
    if parser.errors:
        fail("HTML: " + "; ".join(parser.errors[:5]))
    if parser.stack:
        fail(f"HTML: unclosed {parser.stack[-5:]}")
    if parser.sheets != len(ids) + 1 or parser.ids != set(ids):
        fail(f"HTML has {parser.sheets} sheets for {len(ids)} activities + organisation")
    for i in ids:
        check_contains("HTML", parser.text[i], by_id[i], labelled)
    print(f"register exports ok: {len(ids)} activities in JSON, CSV, Markdown and HTML ({lang}), "
          "every Art. 30(1) element in each")


if __name__ == "__main__":
    args = sys.argv[1:]
    lang = "en"
    if args and args[-1].startswith("--lang="):
        lang = args.pop()[len("--lang="):]
    main(*args[:5], lang=lang)
