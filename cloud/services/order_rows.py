"""What an online order's row reads as: its answer (`order_json`, the status as shown: a held group order is
`group_forming`), the id its Idempotency-Key gives its holds (`key_id`), its plan with reservation ids
(`allocation_of`), and the digest a retried request's body is compared by (`request_hash`)."""
from __future__ import annotations

import hashlib
import json

from protocol import order_lifecycle as lifecycle
from protocol.clock import to_rfc3339


def request_hash(body: dict) -> bytes:
    return hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=16).digest()


def key_id(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=10).hexdigest()


def allocation_of(kid: str, plan: dict[str, dict[str, int]]) -> dict[str, list[dict]]:
    """store -> its lines with their reservation ids (which derive from the request's key)."""
    return {store: [{"sku": sku, "qty": qty, "reservation_id": f"{kid}:{store}:{sku}"} for sku, qty in lines.items()]
            for store, lines in plan.items()}


def order_json(row) -> dict:
    status = lifecycle.shown(row["status"], bool(row.get("group_held")))  # a held group order: group_forming
    return {"order_id": row["order_id"], "status": status, "kind": row["kind"], "member_id": row["member_id"],
            "stores": sorted(json.loads(row["allocation"])), "lines": json.loads(row["lines"]),
            "total_fen": row["total_fen"], "pickup_code": row["pickup_code"],
            "slot_start": to_rfc3339(row["slot_start_ms"]), "expires_at": to_rfc3339(row["expires_ms"]),
            "created_at": to_rfc3339(row["created_ms"]), "payment": json.loads(row["payment"]) if row["payment"] else None,
            "fulfilment": row["fulfilment"], "refunded_fen": row["refunded_fen"],
            "final": lifecycle.is_final(status), "allow_substitutions": row["allow_substitutions"]}
