#!/usr/bin/env python3
"""Independent verifier for Garde's audit log, using only Python's standard library.

Fetches the public key, the latest signed checkpoint and every entry from a running Garde,
then checks, from docs/audit.md alone:
  * the checkpoint's Ed25519 signature (RFC 8032, implemented below) and key id;
  * that the RFC 6962 Merkle root of the entries equals the signed root;
  * the service's inclusion proof for every entry and a consistency proof from an earlier size;
  * that the entry count per actor the checkpoint signs is the entries' own.

Usage: verify_audit.py BASE_URL AUDITOR_KEY      (exit 0 when everything verifies)
"""
import base64
import hashlib
import json
import sys
import urllib.request

# ---- Ed25519 verification (RFC 8032 §5.1.7), from the RFC's reference algorithm ----------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = t1 * 2 * D * t2 % P
    Dd = z1 * 2 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def _mul(s, pt):
    q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, pt)
        pt = _add(pt, pt)
        s >>= 1
    return q


def _equal(a, b):
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % P == 0 and (y1 * z2 - y2 * z1) % P == 0


def _recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def _decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


G_Y = 4 * pow(5, P - 2, P) % P
G = (_recover_x(G_Y, 0), G_Y, 1, _recover_x(G_Y, 0) * G_Y % P)


def ed25519_verify(public, msg, sig):
    if len(public) != 32 or len(sig) != 64:
        return False
    A = _decompress(public)
    R = _decompress(sig[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(sig[:32] + public + msg).digest(), "little") % L
    return _equal(_mul(s, G), _add(R, _mul(h, A)))


# ---- RFC 6962 Merkle tree ------------------------------------------------------------------
def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def verify_inclusion(leaf, index, size, proof, root):
    # RFC 9162 §2.1.3.2
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_root, second_root, proof):
    # RFC 9162 §2.1.4.2
    if first == second:
        return not proof and first_root == second_root
    if first == 0 or not proof:
        return first == 0 and not proof
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


# ---- Checkpoint (C2SP signed note) ---------------------------------------------------------
def parse_checkpoint(note, origin, public):
    body, _, sigs = note.partition("\n\n")
    body += "\n"
    lines = body.split("\n")
    if lines[0] != origin:
        raise ValueError("origin mismatch")
    size = int(lines[1])
    root = base64.b64decode(lines[2])
    key_id = hashlib.sha256(origin.encode() + b"\n\x01" + public).digest()[:4]
    for line in sigs.split("\n"):
        prefix = "\u2014 " + origin + " "
        if not line.startswith(prefix):
            continue
        blob = base64.b64decode(line[len(prefix):])
        if blob[:4] == key_id and ed25519_verify(public, body.encode(), blob[4:]):
            return size, root
    raise ValueError("no valid signature")


def checkpoint_actors(note):
    """The digest on a checkpoint's actors line, or None."""
    for line in note.partition("\n\n")[0].split("\n")[3:]:
        if line.startswith("actors "):
            return base64.b64decode(line[len("actors "):])
    return None


def json_string(s):
    """A string as the counts write it (docs/audit.md): only '"', '\\' and controls escaped."""
    short = {'"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t',
             '\b': '\\b', '\f': '\\f'}
    out = []
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def actor_counts_digest(entries):
    """SHA-256 of "<count> <actor>\\n" per actor, in the byte order of the actors."""
    counts = {}
    for e in entries:
        actor = json.loads(e)["actor"]
        if actor is not None:
            counts[actor] = counts.get(actor, 0) + 1
    text = "".join("%d %s\n" % (counts[a], json_string(a))
                   for a in sorted(counts, key=lambda a: a.encode()))
    return hashlib.sha256(text.encode()).digest()


def get(base, key, path):
    req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + key})
    with urllib.request.urlopen(req) as r:
        return r.read()


def main():
    base, key = sys.argv[1], sys.argv[2]
    keys = json.loads(get(base, key, "/v1/keys/public"))
    public = base64.b64decode(keys["public_key"])
    origin = keys["origin"]
    cp = json.loads(get(base, key, "/v1/audit/checkpoint"))
    size, root = parse_checkpoint(cp["checkpoint"], origin, public)
    assert size == cp["size"], "checkpoint size differs from its JSON"
    raw = get(base, key, "/v1/audit/entries?start=0&end=%d" % size)
    entries = raw.split(b"\n")[:-1]
    assert len(entries) == size, "expected %d entries, got %d" % (size, len(entries))
    leaves = [leaf_hash(e) for e in entries]
    for i, e in enumerate(entries):
        assert json.loads(e)["seq"] == i, "entry %d out of place" % i
    assert mth(leaves) == root, "recomputed root differs from the signed root"
    signed_counts = checkpoint_actors(cp["checkpoint"])
    assert signed_counts is not None, "the checkpoint signs no actor counts"
    assert actor_counts_digest(entries) == signed_counts, "signed actor counts differ"
    for i in range(size):
        p = json.loads(get(base, key, "/v1/audit/proof/inclusion?index=%d&size=%d" % (i, size)))
        proof = [base64.b64decode(h) for h in p["proof"]]
        assert verify_inclusion(leaves[i], i, size, proof, root), "inclusion %d fails" % i
    first = size // 2
    c = json.loads(get(base, key, "/v1/audit/proof/consistency?from=%d&to=%d" % (first, size)))
    proof = [base64.b64decode(h) for h in c["proof"]]
    assert verify_consistency(first, size, mth(leaves[:first]), root, proof), "consistency fails"
    # A forged signature must be refused.
    bad = cp["checkpoint"].replace(cp["checkpoint"].rsplit(" ", 1)[1][:8], "AAAAAAAA")
    try:
        parse_checkpoint(bad, origin, public)
        raise AssertionError("forged checkpoint accepted")
    except ValueError:
        pass
    print("independent verifier: %d entries, root, signature and actor counts OK, "
          "%d inclusion proofs OK, consistency %d->%d OK" % (size, size, first, size))


if __name__ == "__main__":
    main()
