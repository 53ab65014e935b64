#!/usr/bin/env python3
"""Write the example's training data (JSON Lines), deterministically, with the standard library.

    python examples/cohere/make_datasets.py

- data/support-chat.jsonl: chat-finetune-input, {"messages": [{"role", "content"}, ...]}
- data/legal-rerank.jsonl: reranker-finetune-input, {"query", "relevant_passages",
  "hard_negatives"}; Cohere asks for at least 256 unique queries.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPICS = ["refund", "invoice", "password reset", "shipping delay", "plan upgrade", "data export"]
CLAUSES = [
    "indemnity",
    "termination",
    "liability cap",
    "governing law",
    "confidentiality",
    "assignment",
    "force majeure",
    "warranty",
    "non-compete",
    "payment terms",
]


def chat(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for topic in TOPICS:
        rows.append(
            {
                "messages": [
                    {"role": "System", "content": "You are a concise, friendly support agent."},
                    {"role": "User", "content": f"I need help with a {topic}."},
                    {
                        "role": "Chatbot",
                        "content": f"Happy to help with your {topic}. "
                        f"Could you share your account email so I can look it up?",
                    },
                ]
            }
        )
    rng.shuffle(rows)
    return rows


def rerank(rng: random.Random) -> list[dict[str, object]]:
    rows = []
    for i in range(260):
        clause, other = rng.sample(CLAUSES, 2)
        rows.append(
            {
                "query": f"contract {i:03d}: where is the {clause} clause?",
                "relevant_passages": [f"Section {i % 17 + 1} sets out the {clause} terms."],
                "hard_negatives": [f"Section {i % 13 + 2} sets out the {other} terms."],
            }
        )
    return rows


def write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


if __name__ == "__main__":
    rng = random.Random("reconciler")
    write(HERE / "data" / "support-chat.jsonl", chat(rng))
    write(HERE / "data" / "legal-rerank.jsonl", rerank(rng))
    print("wrote data/support-chat.jsonl and data/legal-rerank.jsonl")
