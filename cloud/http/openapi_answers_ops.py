"""/openapi.json answer schemas of the operators' stock and reporting endpoints: the rule book, limit conflicts,
allocations, reorder points and restock, transfers, the order summary and the markdown and loss reports.

Each schema is written from the code that builds the body (named beside it) and checked against live answers in
tests/integration/test_openapi_live.py; `cloud.http.openapi_answers.annotate` puts them in the document.
"""
from __future__ import annotations

from cloud.http.openapi_answers_base import BOOL, DAY, INT, NUM, STR, TIME, array, counts, nullable, obj

RULE_BOOK = obj(["version", "rules"], version=INT, utc_offset_minutes=INT,  # cloud/world.py World.rule_data
                rules=array(obj(["id", "type"], id=STR, type=STR, name=STR)))
LIMIT_CONFLICT = obj(  # actors/promotion_budgets.py op_till_member_uses: one till use past a member's limit
    ["rule_id", "member", "store", "sale_id", "uses", "limit", "at_ms"], rule_id=STR, member=STR, store=STR,
    sale_id=STR, offline=BOOL, uses=INT, limit=INT, at_ms=INT)
ALLOCATION = obj(  # cloud/services/allocations.py _row_json: `sku` or `category` (as `scope` says) names the key
    ["scope", "ratio_bp", "version", "updated_at", "updated_by"], scope={"enum": ["sku", "category"]}, sku=STR,
    category=STR, ratio_bp=INT, version=INT, updated_at=TIME, updated_by=STR)
CHANNEL_SHARE = obj(  # cloud/services/channel_shares.py _row_json
    ["channel", "marketplace", "scope", "ratio_bp", "version", "updated_at", "updated_by"], channel=STR,
    marketplace=STR, scope={"enum": ["sku", "category"]}, sku=STR, category=STR, ratio_bp=INT, version=INT,
    updated_at=TIME, updated_by=STR)
POINTS = {"reorder_point": INT, "target": INT}
REORDER_POINTS = obj(  # cloud/services/restock.py Restock.view
    ["store_id", "window_days", "cover_days", "items"], store_id=STR, window_days=INT, cover_days=INT,
    items=array(obj(["sku", "name", "supplier", "sold_7d", "velocity_per_day", "lead_days", "default", "source",
                     "reorder_point", "target", "version"], sku=STR, name=STR, supplier=STR, sold_7d=INT,
                    velocity_per_day=NUM, lead_days=INT, default=obj(["reorder_point", "target"], **POINTS),
                    source={"enum": ["hq", "default"]}, version=INT, updated_at=TIME, updated_by=STR, **POINTS)))
PACKS = {"pack_size": nullable(INT), "packs": nullable(INT)}  # restock.py _packs: None when sold loose
RESTOCK = obj(  # cloud/services/restock.py Restock.operator_view
    ["store_id", "alerts", "suggested_orders"], store_id=nullable(STR),
    alerts=array(obj(["alert_id", "store_id", "sku", "name", "supplier", "on_hand", "owed", "projected",
                      "incoming_transfers", "reorder_point", "target", "suggested_qty", "raised_at"],
                     alert_id=STR, store_id=STR, sku=STR, name=STR, supplier=STR,
                     on_hand=INT, on_hand_at_alert=INT, owed=INT, projected=INT, incoming_transfers=INT,
                     suggested_qty=INT, raised_at=TIME, **POINTS, **PACKS)),
    suggested_orders=array(obj(["supplier", "lines", "value_fen"], supplier=STR, value_fen=INT, lines=array(obj(
        ["store_id", "sku", "qty", "unit", "value_fen"], store_id=STR, sku=STR, qty=INT, unit={"enum": ["g", "piece"]},
        value_fen=INT, **PACKS)))))
LOT_LINE = obj(["sku", "qty"], sku=STR, qty=INT, lot=nullable(STR), use_by=nullable(STR))
TRANSFER = obj(  # cloud/services/transfers.py transfer_json (+ store_told on a request)
    ["transfer_id", "from_store", "to_store", "status", "lines", "origin", "requested_at", "in_transit"],
    transfer_id=STR, from_store=STR, to_store=STR,
    status={"enum": ["awaiting_approval", "requested", "dispatched", "received", "cancelled", "refused"]},
    lines=array(LOT_LINE), reason=nullable(STR), origin=STR, requested_by=nullable(STR), requested_at=TIME,
    dispatched=array(LOT_LINE), dispatched_by=nullable(STR), dispatched_at=TIME, received=array(LOT_LINE),
    received_by=nullable(STR), received_at=TIME,
    discrepancies=array(obj(["sku", "dispatched", "received"], sku=STR, lot=nullable(STR), use_by=nullable(STR),
                            dispatched=INT, received=INT)),
    in_transit=array(LOT_LINE), store_told=BOOL, decided_by=STR, decided_at=TIME, decision_reason=STR)
TRANSFERS = obj(["transfers", "in_transit"], transfers=array(TRANSFER),  # Transfers.view
                in_transit=array(obj(["from_store", "to_store", "sku", "qty"], from_store=STR, to_store=STR, sku=STR,
                                     lot=nullable(STR), use_by=nullable(STR), qty=INT)))  # transfers.py in_transit
COUNT_FEN = obj(["count", "fen"], count=INT, fen=INT)
ORDER_SUMMARY = obj(  # cloud/services/order_book.py summary + order_figures.py figures
    ["since", "ended", "open_count", "open", "deliveries", "till_returns", "after_sales"], since=TIME,
    ended=counts(), open_count=INT,
    open=array(obj(["order_id", "kind", "status", "status_text", "stores", "since", "waiting_for"], order_id=STR,
                   kind=STR, status=STR, status_text=STR, stores=array(STR), since=TIME, waiting_for=STR)),
    deliveries=obj(["orders", "tries", "tries_by_status", "failed_by_reason", "redispatched"], orders=INT, tries=INT,
                   tries_by_status=counts(), failed_by_reason=counts(), redispatched=INT),
    till_returns=obj(["count", "fen", "by_method", "of_online_orders"], count=INT, fen=INT, by_method=counts(COUNT_FEN),
                     of_online_orders=INT),
    after_sales=counts(COUNT_FEN))
MARKDOWNS = obj(  # cloud/services/markdown_report.py report
    ["from_day", "to_day", "store_id", "rows", "by_rule", "by_store", "total_fen"], from_day=DAY, to_day=DAY,
    store_id=nullable(STR), by_rule=counts(), by_store=counts(), total_fen=INT,
    rows=array(obj(["rule_id", "rule_name", "store_id", "day", "lines", "given_fen"], rule_id=STR, rule_name=STR,
                   store_id=STR, day=DAY, lines=INT, given_fen=INT)))
LOSS_ROW = obj(  # cloud/services/losses.py _empty: one group's (or the totals') figures
    ["key", "lines", "pieces", "grams", "value_at_cost_fen", "value_at_price_fen", "unpriced_lines"], key=STR,
    lines=INT, pieces=INT, grams=INT, value_at_cost_fen=INT, value_at_price_fen=INT, unpriced_lines=INT)
LOSSES = obj(["from", "to", "store", "group_by", "rows", "totals"], store=nullable(STR),  # Losses.report
             group_by={"enum": ["reason", "category", "store", "day"]}, rows=array(LOSS_ROW), totals=LOSS_ROW,
             **{"from": DAY, "to": DAY})

STOCKTAKES = obj(["store", "stocktakes"], store=nullable(STR), stocktakes=array(obj(  # messaging/stocktakes.py listed
    ["stocktake_id", "store_id", "event_id", "scope", "opened_by", "approved_by", "opened_ms", "posted_ms",
     "zero_uncounted", "uncounted", "variance_cost_fen", "variance_price_fen", "lines"], stocktake_id=STR,
    store_id=STR, event_id=STR, scope=STR, opened_by=STR, approved_by=STR, opened_ms=INT, posted_ms=INT,
    zero_uncounted=BOOL, uncounted=INT, variance_cost_fen=INT, variance_price_fen=INT,
    lines=array(obj(["sku", "lot", "unit", "counted", "book", "variance", "unit_cost_fen", "variance_cost_fen",
                     "variance_price_fen", "counted_by"], sku=STR, lot=STR, unit=STR, counted=INT, book=INT,
                    variance=INT, unit_cost_fen=INT, variance_cost_fen=INT, variance_price_fen=INT,
                    counted_by=STR)))))

ANSWERS: dict[tuple[str, str], dict] = {
    ("/operator/stocktakes", "get"): STOCKTAKES,
    ("/rule-book", "get"): RULE_BOOK,
    ("/promotion-budgets/limit-conflicts", "get"): obj(  # cloud/http/routes/promotions.py limit_conflicts
        ["store_id", "conflicts"], store_id=nullable(STR), conflicts=array(LIMIT_CONFLICT)),
    ("/stores/{store_id}/allocation", "put"): {  # cloud/services/allocations.py Allocations.set
        **ALLOCATION, "required": ["store_id", *ALLOCATION["required"], "store_told"],
        "properties": {**ALLOCATION["properties"], "store_id": STR, "store_told": BOOL}},
    ("/stores/{store_id}/allocation", "get"): obj(  # Allocations.view
        ["store_id", "default_ratio_bp", "allocations"], store_id=STR, default_ratio_bp=INT,
        allocations=array(ALLOCATION)),
    ("/stores/{store_id}/marketplaces/{marketplace}/share", "put"): {  # ChannelShares.set
        **CHANNEL_SHARE, "required": ["store_id", *CHANNEL_SHARE["required"], "escrow"],
        "properties": {**CHANNEL_SHARE["properties"], "store_id": STR,
                       "escrow": {"type": "object", "additionalProperties": INT}}},
    ("/stores/{store_id}/marketplaces", "get"): obj(  # ChannelShares.view
        ["store_id", "shares"], store_id=STR, shares=array(CHANNEL_SHARE)),
    ("/stores/{store_id}/reorder-points", "put"): {  # Restock.set_points: the view, and whether the store was told
        **REORDER_POINTS, "required": [*REORDER_POINTS["required"], "store_told"],
        "properties": {**REORDER_POINTS["properties"], "store_told": BOOL}},
    ("/stores/{store_id}/reorder-points", "get"): REORDER_POINTS,
    ("/operator/restock", "get"): RESTOCK,
    ("/operator/transfers", "post"): {**TRANSFER, "required": [*TRANSFER["required"], "store_told"]},
    ("/operator/transfers/{transfer_id}/cancel", "post"): TRANSFER,
    ("/transfers", "get"): TRANSFERS,
    ("/operator/orders/summary", "get"): ORDER_SUMMARY,
    ("/operator/reports/markdowns", "get"): MARKDOWNS,
    ("/operator/reports/losses", "get"): LOSSES,
}
