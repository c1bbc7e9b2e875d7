#!/usr/bin/env python3
"""Independent check of a breach's evidence (GET /v1/incidents/{id}/evidence?subject=...),
with the functions of verify_audit.py and Python's standard library only: the tree head's
Ed25519 signature under the service's public key, then each entry's leaf hash (of its exact
bytes) and RFC 6962 inclusion proof up to that signed root, and that each entry is an access
by the leaked key to that subject. A changed byte in any entry must be caught.

Usage: verify_evidence.py BASE_URL OFFICER_KEY INCIDENT SUBJECT ACTOR   (exit 0 when it holds)
"""
import base64
import json
import sys
import urllib.parse

from verify_audit import get, leaf_hash, parse_checkpoint, verify_inclusion


def check(evidence, origin, public, subject, actor):
    size, root = parse_checkpoint(evidence["checkpoint"], origin, public)
    assert size == evidence["size"], "the evidence's size differs from its signed head"
    assert base64.b64decode(evidence["root_hash"]) == root, "root differs from the signed root"
    assert evidence["entries"], "no entry"
    for e in evidence["entries"]:
        raw = e["entry"].encode()
        leaf = leaf_hash(raw)
        assert base64.b64decode(e["leaf_hash"]) == leaf, "leaf hash of entry %d" % e["index"]
        proof = [base64.b64decode(h) for h in e["proof"]]
        assert verify_inclusion(leaf, e["index"], size, proof, root), "inclusion of %d" % e["index"]
        fields = json.loads(raw)
        assert fields["seq"] == e["index"], "entry %d out of place" % e["index"]
        assert fields["subject"] == subject and fields["actor"] == actor, "not the key's access"
    return len(evidence["entries"])


def main():
    base, key, incident, subject, actor = sys.argv[1:6]
    keys = json.loads(get(base, key, "/v1/keys/public"))
    public, origin = base64.b64decode(keys["public_key"]), keys["origin"]
    evidence = json.loads(get(base, key, "/v1/incidents/%s/evidence?subject=%s" %
                              (incident, urllib.parse.quote(subject))))
    n = check(evidence, origin, public, subject, actor)
    # One changed byte in one entry must not verify.
    forged = json.loads(json.dumps(evidence))
    forged["entries"][0]["entry"] = forged["entries"][0]["entry"].replace('"ok"', '"ko"', 1)
    try:
        check(forged, origin, public, subject, actor)
        raise SystemExit("a changed entry verified")
    except AssertionError:
        pass
    print("evidence: %d entries of %s proved against the signed head" % (n, subject))


if __name__ == "__main__":
    main()
