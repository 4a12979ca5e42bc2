"""The back office's promotions area (issue 21, build 2): the promotion book editor and the coupon campaigns.

- `/office/promotions` (views.read): the book in force rule by rule (type, window, channels, status scheduled /
  live / ended, budget used), the newest draft made from it, an editor with a form for every rule type, a preview
  panel (channel, store, member level, time, basket lines: each line's price and each rule's effect), publishing.
- `/office/campaigns` (views.read): coupon definitions, issuing a definition to a segment, the segments.

Guarantees: the pages only read (through the services, never HTTP to ourselves); every change and the preview go
through the operator JSON API from the page's script (`promotions.js`, `campaigns.js`), which validates (a rule's
error names the rule and field), decides by role and audits. What the editor offers per rule type is `RULE_FORMS`
(data), one fieldset per type, so every type has its form and a new type is one entry.
"""
from __future__ import annotations

from typing import Any

from cloud.office import i18n
from cloud.office.pages import lang_of, may, office_operator, office_page
from cloud.services import rule_book_drafts
from protocol.pricing.rules import RULE_TYPES

# Per rule type, its own fields: (field, kind). Kinds: yuan (fen typed as yuan), percent (basis points typed as
# percent), int, bool, hhmm, sku, tiers ("spend:off" yuan pairs, one per line). The fields every rule has are in
# the editor's common part (id, name, priority, group, channels, stores, window, levels, budget, scope).
RULE_FORMS: dict[str, list[tuple[str, str]]] = {
    "item_discount": [("percent_off_bp", "percent"), ("amount_off_fen", "yuan")],
    "member_discount": [("percent_off_bp", "percent"), ("amount_off_fen", "yuan")],
    "spend_threshold": [("tiers", "tiers"), ("repeat", "bool"), ("max_repeats", "int")],
    "coupon": [("min_spend_fen", "yuan"), ("amount_off_fen", "yuan"), ("percent_off_bp", "percent"),
               ("new_member_only", "bool")],
    "gift": [("spend_fen", "yuan"), ("gift_sku", "sku"), ("gift_qty", "int")],
    "group_buy": [("group_price_fen", "yuan"), ("group_size", "int"), ("window_min", "int")],
    "markdown": [("from_time", "hhmm"), ("days_to_use_by", "int"), ("percent_off_bp", "percent"),
                 ("price_fen", "yuan")],
}
assert set(RULE_FORMS) == set(RULE_TYPES), "every rule type has its form in the editor"
STATUS_BADGE = {"live": "good", "scheduled": "", "ended": "bad"}


def _levels(world) -> list[str]:
    """Member levels the book and the catalogue know (the preview's choices)."""
    found = {lp.level for p in world.catalogue.by_sku.values() for lp in p.member_prices}
    found |= {level for r in world.rule_book.rules for level in r.member_levels}
    return sorted(found)


async def _open_draft(drafts, in_force: int) -> dict[str, Any] | None:
    """The newest unpublished draft made from the book in force (the one the editor goes on with), or None."""
    for listed in await drafts.list():
        if listed["published_version"] is None and listed["based_on_version"] == in_force:
            return await drafts.get(listed["draft_id"])
    return None


def routes(services) -> list[tuple]:
    async def promotions(request):
        operator = await office_operator(request, services, "views.read")
        w = i18n.words(lang_of(request))
        world = services.cloud.world
        drafts = rule_book_drafts.of(services)
        schedule = await drafts.schedule()
        draft = await _open_draft(drafts, world.rule_book.version)
        catalogue = [{"sku": p.sku, "name": p.name, "weighed": p.weighed, "channels": list(p.channels)}
                     for p in world.catalogue.by_sku.values()]
        return office_page(request, services, "promotions.html", {
            "schedule": schedule, "status_badge": STATUS_BADGE, "rule_forms": RULE_FORMS,
            "stores": sorted(world.stores), "levels": _levels(world), "recent": (await drafts.list())[:5],
            "editor": {"book": world.rule_data, "draft": draft, "catalogue": catalogue,
                       "categories": sorted(world.catalogue.categories), "forms": RULE_FORMS,
                       "in_force": world.rule_book.version},
        }, title=w["promotions.title"], operator=operator)

    async def campaigns(request):
        operator = await office_operator(request, services, "views.read")
        w = i18n.words(lang_of(request))
        definitions = (await services.coupons.definitions())["definitions"]
        profiles = may(operator, "members.profiles")  # segments show members' counts: the API's permission
        segments = (await services.segments.overview(None, "", 1))["segments"] if profiles else []
        launched = await services.segments.campaigns() if profiles else []
        return office_page(request, services, "promotions_campaigns.html", {
            "definitions": definitions, "segments": segments, "campaigns": launched[:20],
            "coupon_rules": services.coupons.rules()["rules"],
        }, title=w["promotions.campaigns"], operator=operator)

    return [("/office/promotions", promotions, ["GET"]), ("/office/campaigns", campaigns, ["GET"])]
