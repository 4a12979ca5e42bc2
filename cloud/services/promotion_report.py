"""The promotion-effect report (issue 17 item 7): per rule of the promotion book, by channel and store, how often
it was used, what it gave away, and what the baskets that used it sold compared with the baskets that did not
(same period, same stores, same channel); per campaign, its targeted members' baskets since launch and the coupons
of its definition issued to them vs redeemed; per coupon definition, coupons issued vs redeemed.

Guarantees:
- Read from the baskets the cloud recorded (`promotion_baskets` / `promotion_uses`, cloud/messaging/promotion_uses.py):
  every till sale the bridge applied, and every online order placed that is (or was) paid - an online order that
  expired or was cancelled unpaid was never a sale and never counts. Money is what the goods sold for, after
  discounts (an online order's delivery fee is not goods). Baskets before migration 30 were not recorded.
- "with" and "without" partition the same baskets: for each (rule, channel, store), baskets_with + baskets_without
  = the baskets of that channel and store in the period, and likewise the fen.
- The period is the chain's days `from`..`to` (inclusive, the chain's time zone); `store` and `channel` narrow it.
- Coupons are read from the coupons part's `coupons` table (code, definition_id, member_id, status, channel,
  store_id, issued_ms) when it exists at query time; a coupon counts as redeemed when its status is 'redeemed'.
  The coupons part names a till redemption's channel 'offline': the report's `till` reads those (COUPON_CHANNEL);
  each definition and campaign also gives its redemptions by channel (`redeemed_by_channel` {till, online}).
  Without the table the report says so (`coupons.available` false, with a note) rather than showing zeros.
- A store manager sees only their own store (the HTTP layer scopes the query to it).
"""
from __future__ import annotations

import csv
import html
import io
from datetime import date
from typing import Any

from protocol.order_lifecycle import PAID_STATUSES
from protocol.policy import CHAIN_UTC_OFFSET_MIN

DAY_MS = 86_400_000
CHANNELS = ("till", "online")
REDEEMED = "redeemed"
# the report's channel -> the coupons part's `coupons.channel` (cloud/messaging/coupons.py, coupon_desk.py)
COUPON_CHANNEL = {"till": "offline", "online": "online"}

BASKETS_CTE = """with b as (
    select pb.basket_id, pb.channel, pb.store_id, pb.member_id, pb.goods_fen, pb.at_ms
    from promotion_baskets pb left join orders o on pb.channel = 'online' and o.order_id = pb.ref
    where pb.at_ms >= $1 and pb.at_ms < $2 and ($3::text is null or pb.store_id = $3)
      and ($4::text is null or pb.channel = $4) and (pb.channel = 'till' or o.status = any($5::text[])))"""
TOTALS_SQL = BASKETS_CTE + (  # noqa: S608 - constant SQL: every value is a bound parameter
    """
    select channel, store_id, count(*) as baskets, coalesce(sum(goods_fen), 0)::bigint as sales_fen
    from b group by channel, store_id""")
USES_SQL = BASKETS_CTE + (  # noqa: S608 - likewise
    """
    select u.rule_id, max(u.name) as name, b.channel, b.store_id, count(*) as uses,
           sum(u.saving_fen)::bigint as discount_fen, sum(b.goods_fen)::bigint as sales_with_fen
    from promotion_uses u join b using (basket_id) group by u.rule_id, b.channel, b.store_id""")
CAMPAIGN_SALES_SQL = BASKETS_CTE + (  # noqa: S608 - likewise
    """
    select c.campaign_id, count(b.basket_id) as baskets, coalesce(sum(b.goods_fen), 0)::bigint as sales_fen
    from campaigns c join campaign_members cm using (campaign_id)
         left join b on b.member_id = cm.member_id and b.at_ms >= c.created_ms
    where c.created_ms < $2 group by c.campaign_id""")
CAMPAIGNS_SQL = "select * from campaigns where created_ms < $1 order by created_ms"
# the coupons part's table (migration 26): only queried when it exists
COUPONS_SQL = """select definition_id, count(*) filter (where issued_ms >= $1 and issued_ms < $2) as issued,
                        count(*) filter (where status = $5 and ($3::text is null or store_id = $3)
                                         and ($4::text is null or channel = $4)
                                         and issued_ms < $2) as redeemed,
                        count(*) filter (where status = $5 and ($3::text is null or store_id = $3)
                                         and channel = 'offline' and ($4::text is null or channel = $4)
                                         and issued_ms < $2) as redeemed_till,
                        count(*) filter (where status = $5 and ($3::text is null or store_id = $3)
                                         and channel = 'online' and ($4::text is null or channel = $4)
                                         and issued_ms < $2) as redeemed_online
                 from coupons group by definition_id"""
CAMPAIGN_COUPONS_SQL = """select c.campaign_id, count(k.code) as issued,
                                 count(k.code) filter (where k.status = $1) as redeemed,
                                 count(k.code) filter (where k.status = $1 and k.channel = 'offline') as redeemed_till,
                                 count(k.code) filter (where k.status = $1 and k.channel = 'online') as redeemed_online
                          from campaigns c join campaign_members cm using (campaign_id)
                               join coupons k on k.definition_id = c.definition_id and k.member_id = cm.member_id
                                             and k.issued_ms >= c.created_ms
                          group by c.campaign_id"""


def period_ms(start: str, end: str, utc_offset_min: int = CHAIN_UTC_OFFSET_MIN) -> tuple[int, int]:
    """The epoch ms range [from's midnight, the midnight after `to`) in the chain's time zone."""
    offset = utc_offset_min * 60_000
    a = (date.fromisoformat(start) - date(1970, 1, 1)).days * DAY_MS - offset
    b = ((date.fromisoformat(end) - date(1970, 1, 1)).days + 1) * DAY_MS - offset
    return a, b


def effect_rows(totals: list[dict[str, Any]], uses: list[dict[str, Any]], names: dict[str, str]) -> list[dict]:
    """Per (rule, channel, store): uses, discount, and the baskets with the rule vs without it (the rest of the
    same channel's and store's baskets)."""
    all_of = {(t["channel"], t["store_id"]): t for t in totals}
    rows = []
    for u in uses:
        t = all_of[(u["channel"], u["store_id"])]
        with_n, with_fen = u["uses"], u["sales_with_fen"]
        without_n, without_fen = t["baskets"] - with_n, t["sales_fen"] - with_fen
        rows.append({"rule_id": u["rule_id"], "name": names.get(u["rule_id"]) or u["name"] or u["rule_id"],
                     "channel": u["channel"], "store_id": u["store_id"], "uses": with_n,
                     "discount_fen": u["discount_fen"], "baskets_with": with_n, "sales_with_fen": with_fen,
                     "avg_basket_with_fen": with_fen // with_n if with_n else 0,
                     "baskets_without": without_n, "sales_without_fen": without_fen,
                     "avg_basket_without_fen": without_fen // without_n if without_n else 0})
    rows.sort(key=lambda r: (r["rule_id"], r["channel"], r["store_id"]))
    return rows


def by_rule(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rule over every channel and store of the selection: uses and discount given."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        agg = out.setdefault(r["rule_id"], {"rule_id": r["rule_id"], "name": r["name"], "uses": 0, "discount_fen": 0,
                                            "uses_by_channel": {c: 0 for c in CHANNELS}})
        agg["uses"] += r["uses"]
        agg["discount_fen"] += r["discount_fen"]
        agg["uses_by_channel"][r["channel"]] += r["uses"]
    return sorted(out.values(), key=lambda a: (-a["discount_fen"], a["rule_id"]))


COLUMNS = ["rule_id", "name", "channel", "store_id", "uses", "discount_fen", "baskets_with", "sales_with_fen",
           "avg_basket_with_fen", "baskets_without", "sales_without_fen", "avg_basket_without_fen"]


def as_csv(answer: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for row in answer["rows"]:
        writer.writerow([row[c] for c in COLUMNS])
    return out.getvalue()


HEADINGS = {  # Simplified Chinese first, English beside it
    "rule_id": "规则 rule", "name": "名称 name", "channel": "渠道 channel", "store_id": "门店 store", "uses": "使用 uses",
    "discount_fen": "优惠 discount (fen)", "baskets_with": "含规则单数 baskets with",
    "sales_with_fen": "含规则销售 sales with", "avg_basket_with_fen": "客单 avg with",
    "baskets_without": "不含单数 baskets without", "sales_without_fen": "不含销售 sales without",
    "avg_basket_without_fen": "客单 avg without"}


def as_html(answer: dict[str, Any]) -> str:
    """The report as one server-rendered page (no script, no CDN): the per-rule rows and the campaigns."""
    def cell(value: Any) -> str:
        return f"<td>{html.escape(str(value))}</td>"
    rows = "".join("<tr>" + "".join(cell(r[c]) for c in COLUMNS) + "</tr>" for r in answer["rows"])
    campaigns = "".join(
        "<tr>" + "".join(cell(c.get(k, "")) for k in ("campaign_id", "definition_id", "segment", "members",
                                                        "baskets_since", "sales_since_fen", "coupons_issued",
                                                        "coupons_redeemed")) + "</tr>" for c in answer["campaigns"])
    coupons = answer["coupons"]
    note = "" if coupons.get("available") else f"<p>{html.escape(coupons.get('note', ''))}</p>"
    scope = " ".join(f"{k}={html.escape(str(answer[k]))}" for k in ("from", "to", "store", "channel") if answer[k])
    head = "".join(f"<th>{html.escape(HEADINGS[c])}</th>" for c in COLUMNS)
    return (f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>促销效果 Promotion effect</title>"
            f"<style>body{{font-family:sans-serif}}td,th{{border:1px solid #ccc;padding:2px 6px}}"
            f"table{{border-collapse:collapse}}</style></head><body><h1>促销效果 Promotion effect</h1><p>{scope}</p>"
            f"<table><tr>{head}</tr>{rows}</table><h2>营销活动 Campaigns</h2><table><tr><th>campaign</th>"
            f"<th>definition</th><th>segment</th><th>members</th><th>baskets since</th><th>sales since</th>"
            f"<th>coupons issued</th><th>redeemed</th></tr>{campaigns}</table>{note}</body></html>")


class PromotionReport:
    def __init__(self, cloud) -> None:
        self.cloud = cloud

    async def report(self, start: str, end: str, store_id: str | None, channel: str | None) -> dict[str, Any]:
        db = self.cloud.db
        a, b = period_ms(start, end)
        args = (a, b, store_id, channel, list(PAID_STATUSES))
        totals = [dict(r) for r in await db.fetch(TOTALS_SQL, *args)]
        uses = [dict(r) for r in await db.fetch(USES_SQL, *args)]
        names = {rid: r.name for rid, r in self.cloud.world.rule_book.by_id.items()}
        rows = effect_rows(totals, uses, names)
        answer: dict[str, Any] = {
            "from": start, "to": end, "store": store_id, "channel": channel, "rows": rows, "rules": by_rule(rows),
            "baskets": [{"channel": t["channel"], "store_id": t["store_id"], "baskets": t["baskets"],
                         "sales_fen": t["sales_fen"]} for t in sorted(totals, key=lambda t: (t["channel"],
                                                                                              t["store_id"]))]}
        sales = {r["campaign_id"]: r for r in await db.fetch(CAMPAIGN_SALES_SQL, *args)}
        campaigns = [{"campaign_id": c["campaign_id"], "definition_id": c["definition_id"], "segment": c["segment"],
                      "members": c["members"], "baskets_since": sales[c["campaign_id"]]["baskets"]
                      if c["campaign_id"] in sales else 0,
                      "sales_since_fen": sales[c["campaign_id"]]["sales_fen"] if c["campaign_id"] in sales else 0}
                     for c in await db.fetch(CAMPAIGNS_SQL, b)]
        answer["coupons"] = await self._coupons(args[:4], campaigns)
        answer["campaigns"] = campaigns
        return answer

    async def _coupons(self, args: tuple, campaigns: list[dict[str, Any]]) -> dict[str, Any]:
        db = self.cloud.db
        if not await db.fetchval("select to_regclass('coupons') is not null"):
            return {"available": False, "note": "no coupons table in this database (the coupons part, migration 26, "
                                                 "is not applied): coupons issued and redeemed are not reported"}
        a, b, store_id, channel = args
        coupon_channel = COUPON_CHANNEL.get(channel, channel) if channel else None
        by_definition = [{"definition_id": r["definition_id"], "issued": r["issued"], "redeemed": r["redeemed"],
                          "redeemed_by_channel": {"till": r["redeemed_till"], "online": r["redeemed_online"]}}
                         for r in await db.fetch(COUPONS_SQL, a, b, store_id, coupon_channel, REDEEMED)]
        per_campaign = {r["campaign_id"]: r for r in await db.fetch(CAMPAIGN_COUPONS_SQL, REDEEMED)}
        for c in campaigns:
            got = per_campaign.get(c["campaign_id"])
            c["coupons_issued"], c["coupons_redeemed"] = (got["issued"], got["redeemed"]) if got else (0, 0)
            c["coupons_redeemed_by_channel"] = {"till": got["redeemed_till"] if got else 0,
                                                "online": got["redeemed_online"] if got else 0}
        return {"available": True, "by_definition": sorted(by_definition, key=lambda d: d["definition_id"])}
