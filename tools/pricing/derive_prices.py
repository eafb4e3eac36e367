#!/usr/bin/env python3
"""Derive Convergence's default LLM price lists from LiteLLM's public price file.

Usage: python3 tools/pricing/derive_prices.py PATH/TO/model_prices_and_context_window.json

Writes configs/{openai,anthropic,deepseek}/seed/data/{provider}_pricing.csv (prices in USD per
million tokens). Prices are converted from the per-token floats through their shortest decimal
text, so 2.5e-06 becomes exactly 2.5 per million. A price the source does not give stays empty:
nothing is guessed. The source is LiteLLM (MIT); see configs/PROVENANCE.md.
"""
import csv
import json
import pathlib
import sys
from decimal import Decimal

COLUMNS = [
    "model_id", "mode", "input_per_mtok", "cached_input_per_mtok", "cache_write_5m_per_mtok",
    "cache_write_1h_per_mtok", "output_per_mtok", "batch_input_per_mtok", "batch_output_per_mtok",
    "currency", "effective_from", "effective_to", "source",
]
# The seed prices apply to all history until an org edits them; a later price gets its own
# effective_from, so a change never reprices earlier usage.
EFFECTIVE_FROM = "1970-01-01"
SOURCE = "litellm model_prices_and_context_window.json (2026-08-01)"
TOKEN_MODES = {"chat", "responses", "embedding", "completion"}


def per_million(value):
    if value is None:
        return ""
    amount = (Decimal(repr(float(value))) * 1_000_000).normalize()
    return format(amount, "f")


def rows_for(data, provider, prefix=""):
    rows = {}
    for key, entry in sorted(data.items()):
        if not isinstance(entry, dict) or entry.get("litellm_provider") != provider:
            continue
        if entry.get("mode") not in TOKEN_MODES or "input_cost_per_token" not in entry:
            continue
        if key.startswith("ft:"):
            continue  # fine-tuned model prices are per customer model, not a list price
        model = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if model in rows and key.startswith(prefix) and prefix:
            continue  # the unprefixed entry wins
        rows[model] = {
            "model_id": model,
            "mode": entry.get("mode", ""),
            "input_per_mtok": per_million(entry.get("input_cost_per_token")),
            "cached_input_per_mtok": per_million(entry.get("cache_read_input_token_cost", entry.get("input_cost_per_token_cache_hit"))),
            "cache_write_5m_per_mtok": per_million(entry.get("cache_creation_input_token_cost")),
            "cache_write_1h_per_mtok": per_million(entry.get("cache_creation_input_token_cost_above_1hr")),
            "output_per_mtok": per_million(entry.get("output_cost_per_token", 0)),
            "batch_input_per_mtok": per_million(entry.get("input_cost_per_token_batches")),
            "batch_output_per_mtok": per_million(entry.get("output_cost_per_token_batches")),
            "currency": "USD",
            "effective_from": EFFECTIVE_FROM,
            "effective_to": "",
            "source": SOURCE,
        }
    return [rows[m] for m in sorted(rows)]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = json.loads(pathlib.Path(sys.argv[1]).read_text())
    root = pathlib.Path(__file__).resolve().parents[2] / "configs"
    for provider, prefix in (("openai", ""), ("anthropic", ""), ("deepseek", "deepseek/")):
        target = root / provider / "seed" / "data" / f"{provider}_pricing.csv"
        target.parent.mkdir(parents=True, exist_ok=True)
        rows = rows_for(data, provider, prefix)
        with target.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        print(f"{target.relative_to(root.parent)}: {len(rows)} models")


if __name__ == "__main__":
    main()
