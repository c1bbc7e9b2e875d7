#!/usr/bin/python3
"""Reads a Prometheus text exposition (a file) with the official client's parser (Debian's
python3-prometheus-client) and prints what it understood: one line per family
("# family NAME TYPE") and one per sample ("NAME{k="v",...} VALUE", labels sorted).
Exits 1 with the parser's message when the text is not a valid exposition."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        text = f.read()
    try:
        for family in text_string_to_metric_families(text):
            print(f"# family {family.name} {family.type}")
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                print(f"{s.name}{{{labels}}} {s.value:.9g}")
    except Exception as e:  # the parser raises ValueError and others on bad input
        print(f"invalid exposition: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
