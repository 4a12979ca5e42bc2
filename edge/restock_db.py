"""The store database's side of restock: HQ's reorder points (`reorder_points`) and the store's restock alerts
(`restock_alerts`). Effects are executed by `edge.store_db` (merged into its executors, in its one transaction per
outcome); the actor's loads go through the writer connection (the actor is the only writer), listings for the lane
API through the reader (committed data only)."""
from __future__ import annotations

from collections.abc import Iterable

from edge.core import restock
from edge.core.outcome import CloseRestockAlert, InsertOrder, MoveStock, OpenRestockAlert, Outcome, SetReorderPoint
from edge.core.restock import OpenAlert
from edge.core.state import Books, EventStamp
from protocol.restock import Point
from protocol.restock_messages import ReorderPointsSet

SCHEMA = """
create table if not exists reorder_points (sku text primary key, reorder_point integer not null,
    target integer not null, version integer not null);
create table if not exists restock_alerts (alert_id text primary key, sku text not null, on_hand integer not null,
    owed integer not null, reorder_point integer not null, target integer not null, suggested_qty integer not null,
    raised_ms integer not null, cleared_ms integer);
create unique index if not exists restock_alerts_open on restock_alerts (sku) where cleared_ms is null;
"""
OWING_STATUSES = ("to_pick", "picking")  # online orders whose goods are still on the shelf (picking takes them off)
ALERTS_LISTED_MAX = 500


def moved_skus(effects: Iterable[object]) -> list[str]:
    """The SKUs whose projected stock or point the effects changed (what the actor checks for restock after
    committing them): stock movements, a new online order to pick, a new reorder point."""
    return sorted({e.event.sku for e in effects if isinstance(e, MoveStock)}
                  | {e.sku for e in effects if isinstance(e, SetReorderPoint)}
                  | {str(line.get("sku")) for e in effects if isinstance(e, InsertOrder)
                     for line in e.payload.get("lines", ()) if isinstance(line, dict)})


async def _rows(conn, sql: str, params: tuple | list = ()) -> list:
    async with conn.execute(sql, params) as cur:
        return list(await cur.fetchall())


async def point(conn, sku: str) -> Point | None:
    rows = await _rows(conn, "select sku, reorder_point, target from reorder_points where sku = ?", (sku,))
    return Point(*rows[0]) if rows else None


async def kept_versions(conn, skus: Iterable[str]) -> dict[str, int]:
    skus = sorted(set(skus))
    rows = await _rows(conn, f"select sku, version from reorder_points where sku in ({','.join('?' * len(skus))})",  # noqa: S608
                       skus) if skus else []
    return {r[0]: r[1] for r in rows}


async def open_alert(conn, sku: str) -> OpenAlert | None:
    rows = await _rows(conn, "select alert_id, sku from restock_alerts where sku = ? and cleared_ms is null", (sku,))
    return OpenAlert(*rows[0]) if rows else None


async def owed(conn, sku: str) -> int:
    """Units of `sku` that online orders still to pick here will take off the shelf."""
    rows = await _rows(conn, "select coalesce(sum(json_extract(l.value, '$.qty')), 0) from orders o, "
                             "json_each(json_extract(o.payload, '$.lines')) l where o.status in (?, ?) "
                             "and json_extract(l.value, '$.sku') = ?", (*OWING_STATUSES, sku))
    return int(rows[0][0]) if rows else 0


async def alerts(conn, status: str | None = None) -> list[dict]:
    """The store's restock alerts, newest first; `status` "open" or "cleared" narrows them."""
    wanted = {"open": (1, 0), "cleared": (0, 1)}.get(status or "", (1, 1))
    rows = await _rows(conn, "select alert_id, sku, on_hand, owed, reorder_point, target, suggested_qty, raised_ms, "
                             "cleared_ms from restock_alerts where (cleared_ms is null and ?) or (cleared_ms is not null "
                             "and ?) order by raised_ms desc, alert_id desc limit ?", (*wanted, ALERTS_LISTED_MAX))
    keys = ("alert_id", "sku", "on_hand", "owed", "reorder_point", "target", "suggested_qty", "raised_ms", "cleared_ms")
    return [{**dict(zip(keys, r, strict=True)), "open": r[8] is None} for r in rows]


async def points(conn) -> list[dict]:
    rows = await _rows(conn, "select sku, reorder_point, target, version from reorder_points order by sku")
    return [{"sku": r[0], "reorder_point": r[1], "target": r[2], "version": r[3]} for r in rows]


async def check(store_db, books: Books, sku: str, stamp: EventStamp) -> Outcome | None:
    """What the actor runs after `sku` moved: the state `edge.core.restock.check` decides on, and its outcome."""
    w = store_db.writer
    kept, alert = await point(w, sku), await open_alert(w, sku)
    if kept is None and alert is None:  # nothing watched: a sale of most SKUs costs two key lookups here
        return None
    level, product = await store_db.stock_level(sku), books.product(sku)
    return restock.check(sku, level.on_hand, await owed(w, sku), kept, alert, product.pack_size if product else 0, stamp)


async def apply_points(store_db, message: ReorderPointsSet, at_ms: int, store_id: str) -> Outcome:
    """HQ's points as `edge.core.restock.apply_points` decides (the store then checks their SKUs)."""
    seen = await store_db.seen_cloud_message(message.event_id)
    kept = await kept_versions(store_db.writer, (p.sku for p in message.points))
    return restock.apply_points(message, seen, kept, at_ms, store_id)


async def _set_point(db, e: SetReorderPoint) -> None:
    await db.execute("insert into reorder_points (sku, reorder_point, target, version) values (?, ?, ?, ?) "
                     "on conflict (sku) do update set reorder_point = excluded.reorder_point, target = excluded.target, "
                     "version = excluded.version where excluded.version > reorder_points.version",
                     (e.sku, e.reorder_point, e.target, e.version))


async def _open(db, e: OpenRestockAlert) -> None:
    await db.execute("insert into restock_alerts (alert_id, sku, on_hand, owed, reorder_point, target, suggested_qty, "
                     "raised_ms) values (?, ?, ?, ?, ?, ?, ?, ?)",
                     (e.alert_id, e.sku, e.on_hand, e.owed, e.reorder_point, e.target, e.suggested_qty, e.at_ms))


EXECUTORS = {
    SetReorderPoint: _set_point,
    OpenRestockAlert: _open,
    CloseRestockAlert: lambda db, e: db.execute(
        "update restock_alerts set cleared_ms = ? where alert_id = ? and cleared_ms is null", (e.at_ms, e.alert_id)),
}
