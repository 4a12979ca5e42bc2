"""HQ's chain reports (issue 21 build 5): channel split, store KPIs, member contribution, promotion effect, shrinkage
and expiry, flash sales - each over a range of chain days, narrowed to a store (and a category where it splits by
one), answered as rows the JSON and the CSV share (`protocol.reports` names the columns).

Guarantees:
- Read from the daily rollups (`cloud.services.report_rollup`), made fresh for the asked days first (`Rollups.ensure`):
  a year of a 500-store chain is a few hundred thousand rollup rows at most, read by index range; flash sales are
  few and read from their orders through the `orders_flash_report` index.
- The figures are the system of record's: till sales the bridge applied, online orders that are (or were) paid;
  write-offs, stocktake shortfalls and markdowns valued as the loss report values them (`cloud.services.losses`).
- Store scope is decided by the caller (the HTTP layer): a store manager's query always names their store.
- Read-only; no figure depends on the process that answers.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from cloud.services.report_rollup import Rollups, day_ms
from protocol import reports as rp
from protocol.order_lifecycle import PAID_STATUSES
from protocol.policy import chain_day

UNPAID_ENDS = ["expired", "cancelled"]

CHANNEL_SQL = """select {key} as key,
       coalesce(sum(tickets) filter (where channel = 'till'), 0)::bigint as till_tickets,
       coalesce(sum(sales_fen) filter (where channel = 'till'), 0)::bigint as till_fen,
       coalesce(sum(tickets) filter (where channel = 'online'), 0)::bigint as online_tickets,
       coalesce(sum(sales_fen) filter (where channel = 'online'), 0)::bigint as online_fen,
       coalesce(sum(items), 0)::bigint as items, coalesce(sum(returned_fen), 0)::bigint as returned_fen
from report_sales_day
where category = $1 and day between $2 and $3 and {scope}
group by 1 order by 1"""
KEYS = {"day": "day::text", "store": "store_id", "store_day": "store_id || ' ' || day::text"}
LOSS_SQL = """select {key} as key, count(*) as n, sum(lines)::bigint as lines, sum(pieces)::bigint as pieces,
       sum(grams)::bigint as grams, sum(value_at_cost_fen)::bigint as value_at_cost_fen,
       sum(value_at_price_fen)::bigint as value_at_price_fen, sum(unpriced_lines)::bigint as unpriced_lines
from report_loss_day
where day between $1 and $2 and {scope} and ($4::text is null or category = $4)
  and ($5 or reason <> 'markdown')
group by 1"""
LOSS_KEYS = {**KEYS, "reason": "reason", "category": "category"}
SALES_TOTAL_SQL = """select coalesce(sum(sales_fen), 0)::bigint from report_sales_day
where category = $1 and day between $2 and $3 and {scope}"""
# which rollup rows a query reads ({p}: its store parameter): the store's, the chain's ('*'), or every store's own
SCOPES = {"store": "store_id = ${p}", "chain": "(${p}::text is null and store_id = '*')",
          "stores": "(${p}::text is null and store_id <> '*')"}
PER_STORE_GROUPS = ("store", "store_day")


def scope(store: str | None, group_by: str, p: int) -> str:
    """The rows to read: a store's when one is named; every store's own when grouped by store; else the chain's."""
    which = "store" if store is not None else "stores" if group_by in PER_STORE_GROUPS else "chain"
    return SCOPES[which].format(p=p)
MEMBER_SQL = """select level, segment,
       coalesce(sum(tickets) filter (where channel = 'till'), 0)::bigint as till_tickets,
       coalesce(sum(sales_fen) filter (where channel = 'till'), 0)::bigint as till_sales_fen,
       coalesce(sum(tickets) filter (where channel = 'online'), 0)::bigint as online_tickets,
       coalesce(sum(sales_fen) filter (where channel = 'online'), 0)::bigint as online_sales_fen
from report_member_day where store_id = $1 and day between $2 and $3
group by 1, 2"""
PROMOTION_SQL = """select rule_id, channel, sum(uses)::bigint as uses, sum(discount_fen)::bigint as discount_fen,
       sum(sales_with_fen)::bigint as sales_with_fen
from report_promotion_day where store_id = $1 and day between $2 and $3
group by 1, 2"""
FLASH_SQL = """select f.sale_id, f.config ->> 'sku' as sku, (f.config ->> 'quantity')::bigint as quantity,
       (f.config ->> 'price_fen')::bigint as price_fen, (f.config ->> 'starts_ms')::bigint as starts_ms,
       count(o.order_id) filter (where o.status = any($3::text[])) as orders,
       coalesce(sum(q.qty) filter (where o.status = any($3::text[])), 0)::bigint as units_sold,
       coalesce(sum(o.total_fen) filter (where o.status = any($3::text[])), 0)::bigint as sales_fen,
       coalesce(sum(q.qty) filter (where o.status = any($5::text[])), 0)::bigint as units_unpaid,
       count(distinct o.member_id) filter (where o.status = any($3::text[])) as members
from flash_sales f
left join orders o on o.kind = 'flash' and o.sale_id = f.sale_id and ($4::text is null or o.allocation ? $4)
left join lateral (select coalesce(sum((l ->> 'qty')::bigint), 0) as qty from jsonb_array_elements(o.lines) l) q
       on o.order_id is not null
where (f.config ->> 'starts_ms')::bigint >= $1 and (f.config ->> 'starts_ms')::bigint < $2
  and ($4::text is null or coalesce(f.config -> 'blocks', '{}'::jsonb) ? $4
       or exists (select 1 from orders x where x.kind = 'flash' and x.sale_id = f.sale_id and x.allocation ? $4))
group by f.sale_id order by starts_ms, f.sale_id"""


class HqReports:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        self.rollups = Rollups(cloud)

    async def answer(self, q: rp.ReportQuery) -> dict[str, Any]:
        """The report `q` asks for: {report, from, to, store, category, group_by, columns, rows, totals}."""
        if q.report.name != "flash-sales":
            await self.rollups.ensure(q.start, q.end, chain_day(self.cloud.now_ms()))
        make = {"channel-split": self._channels, "store-kpis": self._kpis, "member-contribution": self._members,
                "promotion-effect": self._promotions, "shrinkage": self._shrinkage, "flash-sales": self._flash}
        rows, totals = await make[q.report.name](q)
        return {"report": q.report.name, "from": q.start.isoformat(), "to": q.end.isoformat(), "store": q.store,
                "category": q.category, "group_by": q.group_by, "columns": list(q.report.columns), "rows": rows,
                "totals": totals}

    async def _sales(self, q: rp.ReportQuery, group_by: str) -> list[dict[str, Any]]:
        sql = CHANNEL_SQL.format(key=KEYS[group_by], scope=scope(q.store, group_by, 4))
        return [dict(r) for r in await self.cloud.db.fetch(sql, q.category or "", q.start, q.end, q.store)]

    async def _channels(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        rows = [rp.channel_row(r["key"], r["till_tickets"], r["till_fen"], r["online_tickets"], r["online_fen"])
                for r in await self._sales(q, q.group_by)]
        return rows, rp.channel_row("total", sum(r["till_tickets"] for r in rows), sum(r["till_sales_fen"] for r in rows),
                                    sum(r["online_tickets"] for r in rows), sum(r["online_sales_fen"] for r in rows))

    async def _losses(self, q: rp.ReportQuery, group_by: str, markdowns: bool) -> dict[str, dict[str, Any]]:
        sql = LOSS_SQL.format(key=LOSS_KEYS[group_by], scope=scope(q.store, group_by, 3))
        rows = await self.cloud.db.fetch(sql, q.start, q.end, q.store, q.category, markdowns)
        return {r["key"]: dict(r) for r in rows}

    async def _kpis(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        sales = await self._sales(q, q.group_by)
        lost = await self._losses(q, q.group_by, markdowns=False)  # a markdown sold the goods: not shrinkage
        keys = sorted({r["key"] for r in sales} | set(lost))
        by_key = {r["key"]: r for r in sales}
        rows = []
        for key in keys:
            s = by_key.get(key, {"till_tickets": 0, "till_fen": 0, "online_tickets": 0, "online_fen": 0, "items": 0,
                                 "returned_fen": 0})
            rows.append(rp.kpi_row(key, s["till_fen"] + s["online_fen"], s["till_tickets"] + s["online_tickets"],
                                   s["items"], s["online_fen"], s["returned_fen"],
                                   lost[key]["value_at_price_fen"] if key in lost else 0))
        total = rp.kpi_row("total", sum(r["sales_fen"] for r in rows), sum(r["tickets"] for r in rows),
                           sum(r["items"] for r in rows), sum(s["online_fen"] for s in sales),
                           sum(r["returned_fen"] for r in rows),
                           sum(r["shrinkage_at_price_fen"] for r in rows))
        return rows, total

    async def _members(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        raw = await self.cloud.db.fetch(MEMBER_SQL, q.store or rp.CHAIN, q.start, q.end)
        groups: dict[tuple[str, str], dict[str, Any]] = {}
        for r in raw:
            level = r["level"] if q.group_by != "segment" else "*"
            segment = r["segment"] if q.group_by != "level" else "*"
            g = groups.setdefault((level, segment), {"level": level, "segment": segment, "till_tickets": 0,
                                                     "till_sales_fen": 0, "online_tickets": 0, "online_sales_fen": 0})
            for c in ("till_tickets", "till_sales_fen", "online_tickets", "online_sales_fen"):
                g[c] += r[c]
        rows = rp.member_rows(list(groups.values()))
        total = {"level": "total", "segment": "", **{c: sum(r[c] for r in rows) for c in (
            "till_tickets", "till_sales_fen", "online_tickets", "online_sales_fen", "sales_fen", "tickets")}}
        total["avg_ticket_fen"] = rp.per(total["sales_fen"], total["tickets"])
        total["sales_share_bp"] = 10_000 if total["sales_fen"] else 0
        return rows, total

    async def _promotions(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        raw = [dict(r) for r in await self.cloud.db.fetch(PROMOTION_SQL, q.store or rp.CHAIN, q.start, q.end)]
        per_channel = q.group_by == "rule_channel"
        baskets: dict[str, tuple[int, int]] = {}
        uses: dict[tuple[str, str], dict[str, Any]] = {}
        for r in raw:
            channel = r["channel"] if per_channel else "all"
            if r["rule_id"] == "":  # every basket of the channel: the baseline
                n, fen = baskets.get(channel, (0, 0))
                baskets[channel] = (n + r["uses"], fen + r["sales_with_fen"])
                continue
            u = uses.setdefault((r["rule_id"], channel), {"rule_id": r["rule_id"], "channel": channel, "uses": 0,
                                                          "discount_fen": 0, "sales_with_fen": 0})
            for c in ("uses", "discount_fen", "sales_with_fen"):
                u[c] += r[c]
        book = self.cloud.world.rule_book
        names = {rid: rule.name for rid, rule in getattr(book, "by_id", {}).items()}
        rows = rp.promotion_rows(list(uses.values()), baskets, names)
        total_n = sum(n for n, _ in baskets.values())
        total_fen = sum(fen for _, fen in baskets.values())
        totals = {"rule_id": "total", "name": "", "channel": "all", "uses": sum(r["uses"] for r in rows),
                  "discount_fen": sum(r["discount_fen"] for r in rows), "baskets": total_n, "sales_fen": total_fen}
        return rows, totals

    async def _shrinkage(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        lost = await self._losses(q, q.group_by, markdowns=True)
        sales_by: dict[str, int] = {}
        if q.group_by in ("store", "day"):  # each key's rate against its own sales
            sales_by = {r["key"]: r["till_fen"] + r["online_fen"] for r in await self._sales(q, q.group_by)}
            all_sales = sum(sales_by.values())
        else:
            all_sales = await self.cloud.db.fetchval(SALES_TOTAL_SQL.format(scope=scope(q.store, "", 4)),
                                                     q.category or "", q.start, q.end, q.store)
        columns = ("lines", "pieces", "grams", "value_at_cost_fen", "value_at_price_fen", "unpriced_lines")
        rows = []
        for key, r in lost.items():
            row = {"key": key, **{c: r[c] for c in columns}}
            base = sales_by.get(key, 0) if sales_by else all_sales
            row["rate_bp"] = rp.ratio_bp(r["value_at_price_fen"], base)
            rows.append(row)
        rows.sort(key=lambda r: (-r["value_at_cost_fen"], -r["value_at_price_fen"], r["key"]))
        totals = {"key": "total", **{c: sum(r[c] for r in rows) for c in columns}}
        totals["rate_bp"] = rp.ratio_bp(totals["value_at_price_fen"], all_sales)
        totals["expired_at_cost_fen"] = sum(r["value_at_cost_fen"] for r in rows if r["key"] == "expired")
        return rows, totals

    async def _flash(self, q: rp.ReportQuery) -> tuple[list[dict], dict]:
        a, b = day_ms(q.start), day_ms(q.end + timedelta(days=1))
        raw = await self.cloud.db.fetch(FLASH_SQL, a, b, list(PAID_STATUSES), q.store, UNPAID_ENDS)
        rows = []
        for r in raw:
            rows.append({"sale_id": r["sale_id"], "sku": r["sku"], "starts_day": chain_day(r["starts_ms"]).isoformat(),
                         "quantity": r["quantity"], "price_fen": r["price_fen"], "orders": r["orders"],
                         "units_sold": r["units_sold"], "sales_fen": r["sales_fen"], "units_unpaid": r["units_unpaid"],
                         "members": r["members"], "sell_through_bp": rp.ratio_bp(r["units_sold"], r["quantity"])})
        totals = {"sale_id": "total", **{c: sum(r[c] for r in rows) for c in (
            "quantity", "orders", "units_sold", "sales_fen", "units_unpaid")}}
        totals["sell_through_bp"] = rp.ratio_bp(totals["units_sold"], totals["quantity"])
        return rows, totals

