#!/usr/bin/env python3
"""Converts a flattened GCP billing export CSV (dotted column names, Python list text for credits and labels) into
JSON lines shaped as BigQuery exports the billing table: nested records, credits and labels as arrays, timestamps as
'YYYY-MM-DD HH:MM:SS[.ffffff] UTC'. The partition_date column (a pseudo column in BigQuery) is left out.

    python3 tools/gcp/csv_to_jsonl.py tests/Fixtures/gcp/gcp_billing_export_sample.csv > out.jsonl
"""
import ast
import csv
import json
import sys

LISTS = {"credits", "labels", "system_labels", "project.labels"}
TIMES = {"usage_start_time", "usage_end_time", "export_time"}
NUMBERS = {"cost", "currency_conversion_rate", "usage.amount", "usage.amount_in_pricing_units"}


class Raw(float):
    """A float that prints as the CSV wrote it, so amounts stay exact."""

    def __new__(cls, text):
        value = float.__new__(cls, text)
        value.text = text
        return value

    def __repr__(self):
        return self.text


def main(path):
    for row in csv.DictReader(open(path, newline="", encoding="utf-8")):
        out = {}
        for name, text in row.items():
            if name == "partition_date":
                continue
            if name in LISTS:
                value = ast.literal_eval(text) if text else []
            elif text == "":
                value = None
            elif name in TIMES:
                value = text.replace("+00:00", " UTC")
            elif name in NUMBERS:
                value = Raw(text)
            else:
                value = text
            node = out
            parts = name.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        print(json.dumps(out).replace("NaN", "null"))


if __name__ == "__main__":
    main(sys.argv[1])
