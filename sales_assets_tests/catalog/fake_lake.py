"""A stand-in for the lake resource (read_bytes / uri over a folder) and a partition builder."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

RUN_ID = "20261121T010203Z-ab12cd"


class FolderLake:
    """The two lake methods the crawler relies on, over a local folder."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def read_bytes(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def uri(self, key: str) -> str:
        return str((self.root / key).resolve())


def order(order_id: str, **extra) -> dict:
    """A realistic order as the source API sends it (customer struct, lines array<struct>)."""
    record = {
        "order_id": order_id,
        "order_timestamp": "2026-11-20T18:05:00-05:00",
        "updated_at": "2026-11-20T23:10:00Z",
        "status": "completed",
        "channel": "store",
        "store_id": "S-01",
        "currency": "USD",
        "customer": {"customer_id": "C-1", "name": "Ada", "email": "ada@example.com", "segment": None},
        "lines": [
            {"line_number": 1, "product_id": "P-1", "sku": "SKU-1", "quantity": 2, "unit_price": 19.99},
            {"line_number": 2, "product_id": "P-2", "quantity": 1, "unit_price": 5, "discount": 0.1},
        ],
    }
    record.update(extra)
    return record


def write_partition(root: Path, order_date: str, pages: list[list], run_id: str = RUN_ID) -> dict:
    """Land ``pages`` (lists of records, or raw str lines) as one committed run; returns the manifest."""
    base = f"raw/sales_orders/order_date={order_date}"
    entries = []
    for number, records in enumerate(pages, start=1):
        key = f"{base}/run_id={run_id}/page-{number:05d}.jsonl"
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        body = ("\n".join(lines) + "\n").encode()
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        entries.append({"page": number, "key": key, "records": len(records), "lines": 0,
                        "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()})
    manifest = {"order_date": order_date, "run_id": run_id, "committed_at": "2026-11-21T01:02:03Z",
                "source": {"base_url": "http://127.0.0.1:1", "as_of": "2026-11-21T01:00:00Z"},
                "record_count": sum(len(p) for p in pages), "line_count": 0, "pages": entries}
    (root / base / "_manifest.json").write_text(json.dumps(manifest))
    return manifest
