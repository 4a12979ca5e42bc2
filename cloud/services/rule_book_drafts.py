"""Promotion book drafts (issue 21, build 2): HQ edits a copy of the book, previews baskets against it, publishes it.

Guarantees:
- A draft is saved as numbered revisions (1, 2, ...), never changed in place: revision n+1 is accepted only after
  n (two editors saving at once: the second is told the draft moved on, 409), and saving a revision again with
  the same body answers the first save (idempotent by draft id + revision); with another body, 409.
- A draft is validated whole on every save exactly as `PUT /rule-book` validates a book (the refusal names the
  rule and the field); nothing invalid is stored, and a draft is not in force anywhere until published.
- Publishing a revision makes it the book in force through `WorldAdmin.change` (the same path as
  `PUT /rule-book`: a new world version, sent to every store, audited with who and the before/after of each rule)
  with the version after the one in force; it is refused (409) when the book in force is no longer the one the
  draft was made from (someone published meanwhile), and publishing the same revision again answers the first
  publication. Publications are one at a time chain-wide (a PostgreSQL advisory lock), so presses of publish in
  several API processes at once make one version. Every save and publication is in the operator audit log, in
  the transaction that records it.
- The preview prices with the one evaluator (protocol/pricing/preview.py) and the budgets the PromotionBudgets
  actor says are left now, read-only: nothing is consumed.
"""
from __future__ import annotations

import json
from typing import Any

from cloud.services.member_pricing import budgets_left, capped_rules
from cloud.services.operators import Operator, record
from cloud.services.verdicts import Refusal
from cloud.services.world_admin import changes
from protocol.clock import parse_rfc3339, to_rfc3339
from protocol.errors import ProtocolError
from protocol.pricing import BasketLine, PricingContext
from protocol.pricing.catalogue import LEVEL_RE
from protocol.pricing.preview import PREVIEW_LINES_MAX, draft_book, explain, schedule_status
from protocol.pricing.rules import RULE_ID_RE, RuleBook

MIGRATION_46 = (46, "promotion book drafts: revisions and publications (cloud/services/rule_book_drafts.py)", """
    create table if not exists rule_book_drafts (
        draft_id          text not null,
        revision          int not null,
        based_on_version  int not null,   -- the book in force the draft was made from
        book              text not null,  -- {"rules": [...], "utc_offset_minutes"?} as PUT /rule-book takes it
        note              text not null default '',
        saved_by          text not null,
        saved_ms          bigint not null,
        primary key (draft_id, revision)
    );
    create table if not exists rule_book_publications (
        draft_id           text not null,
        revision           int not null,
        rule_book_version  int not null,
        published_by       text not null,
        published_ms       bigint not null,
        primary key (draft_id, revision),
        foreign key (draft_id, revision) references rule_book_drafts (draft_id, revision)
    );
""")
NOTE_MAX_CHARS = 200
PUBLISH_LOCK_KEY = 0x52424B50  # "RBKP": one publication of a draft at a time, chain-wide
DRAFTS_LISTED_MAX = 100


def _draft_id(value: Any) -> str:
    if not isinstance(value, str) or not RULE_ID_RE.match(value):
        raise Refusal("invalid", "draft_id: letters, digits and _.:- only, 1-64 chars")
    return value


def _revision(value: Any) -> int:
    if type(value) is not int or value < 1:
        raise Refusal("invalid", "revision: a positive integer (1 for a new draft, then one more per save)")
    return value


def _book_body(data: dict[str, Any]) -> dict[str, Any]:
    """A draft's book as stored: its rules (and offset); the version is the one publishing gives it."""
    return {k: v for k, v in data.items() if k != "version"}


class RuleBookDrafts:
    def __init__(self, cloud, world_admin) -> None:
        self.cloud, self.world_admin = cloud, world_admin

    def _validated(self, book: Any) -> tuple[RuleBook, dict[str, Any]]:
        world = self.cloud.world
        try:
            return draft_book(book, world.catalogue, world.rule_book.version + 1)
        except ProtocolError as exc:
            raise Refusal("invalid", f"rule_book: {exc}") from None

    async def save(self, body: dict[str, Any], by: Operator) -> tuple[dict[str, Any], bool]:
        """(the saved revision, whether it was made now: False for the same save again)."""
        draft_id, revision = _draft_id(body.get("draft_id")), _revision(body.get("revision"))
        note = body.get("note", "")
        if not isinstance(note, str) or len(note) > NOTE_MAX_CHARS:
            raise Refusal("invalid", f"note: text of at most {NOTE_MAX_CHARS} characters")
        _, data = self._validated(body.get("rule_book"))
        stored = json.dumps(_book_body(data), sort_keys=True)
        now = self.cloud.now_ms()
        async with self.cloud.db.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(hashtext('rule_book_drafts:' || $1))", draft_id)
            same = await conn.fetchrow("select * from rule_book_drafts where draft_id = $1 and revision = $2",
                                       draft_id, revision)
            if same is not None:
                if same["book"] == stored and same["note"] == note:
                    return self._row(same), False
                raise Refusal("exists", f"draft {draft_id} revision {revision} was already saved with other rules "
                                        "(someone saved meanwhile): open the draft again")
            last = await conn.fetchrow("select * from rule_book_drafts where draft_id = $1 order by revision desc "
                                       "limit 1", draft_id)
            at = last["revision"] if last is not None else 0
            if revision != at + 1:
                raise Refusal("exists", f"draft {draft_id} is at revision {at}: save revision {at + 1}, "
                                        f"not {revision} (open the draft again to see the other changes)")
            based_on = last["based_on_version"] if last is not None else self.cloud.world.rule_book.version
            before_book = json.loads(last["book"]) if last is not None else self.cloud.world.rule_data
            row = await conn.fetchrow(
                "insert into rule_book_drafts (draft_id, revision, based_on_version, book, note, saved_by, saved_ms) "
                "values ($1, $2, $3, $4, $5, $6, $7) returning *", draft_id, revision, based_on, stored, note,
                by.username, now)
            before, after = changes("rule_book", {"rule_book": before_book}, {"rule_book": json.loads(stored)})
            await record(conn, now, by, "rule_book.draft.save", f"rule_book_draft:{draft_id}:{revision}", before, after)
        return self._row(row), True

    def _row(self, row, publication=None) -> dict[str, Any]:
        return {"draft_id": row["draft_id"], "revision": row["revision"], "based_on_version": row["based_on_version"],
                "rule_book": json.loads(row["book"]), "note": row["note"], "saved_by": row["saved_by"],
                "saved_at": to_rfc3339(row["saved_ms"]),
                "published": None if publication is None else self._publication(publication)}

    @staticmethod
    def _publication(row) -> dict[str, Any]:
        return {"draft_id": row["draft_id"], "revision": row["revision"], "rule_book_version": row["rule_book_version"],
                "published_by": row["published_by"], "published_at": to_rfc3339(row["published_ms"])}

    async def get(self, draft_id: str, revision: int | None = None) -> dict[str, Any]:
        """A draft's revision (the newest by default) with its publication, if any, and every revision's summary."""
        rows = await self.cloud.db.fetch("select * from rule_book_drafts where draft_id = $1 order by revision",
                                         draft_id)
        pubs = {r["revision"]: r for r in await self.cloud.db.fetch(
            "select * from rule_book_publications where draft_id = $1", draft_id)}
        chosen = [r for r in rows if revision is None or r["revision"] == revision]
        if not chosen:
            raise Refusal("not_found", f"no draft {draft_id!r}" + (f" revision {revision}" if revision else ""))
        out = self._row(chosen[-1], pubs.get(chosen[-1]["revision"]))
        out["revisions"] = [{"revision": r["revision"], "saved_by": r["saved_by"], "saved_at": to_rfc3339(r["saved_ms"]),
                             "note": r["note"], "published_version": pubs[r["revision"]]["rule_book_version"]
                             if r["revision"] in pubs else None} for r in rows]
        return out

    async def list(self) -> list[dict[str, Any]]:
        """Drafts, most recently saved first: their newest revision and whether that revision was published."""
        rows = await self.cloud.db.fetch(
            "select distinct on (d.draft_id) d.draft_id, d.revision, d.based_on_version, d.note, d.saved_by, "
            "d.saved_ms, p.rule_book_version from rule_book_drafts d left join rule_book_publications p "
            "on p.draft_id = d.draft_id and p.revision = d.revision order by d.draft_id, d.revision desc")
        rows = sorted(rows, key=lambda r: -r["saved_ms"])[:DRAFTS_LISTED_MAX]
        return [{"draft_id": r["draft_id"], "revision": r["revision"], "based_on_version": r["based_on_version"],
                 "note": r["note"], "saved_by": r["saved_by"], "saved_at": to_rfc3339(r["saved_ms"]),
                 "published_version": r["rule_book_version"]} for r in rows]

    async def publish(self, draft_id: str, body: dict[str, Any], by: Operator) -> tuple[dict[str, Any], bool]:
        """(the publication, whether it was made now). The book in force becomes the draft's revision.

        Publishing is one at a time chain-wide (a PostgreSQL advisory lock held on its own connection for the whole
        publication, whichever API process it runs in): two presses of publish, or two processes, make one version."""
        revision = _revision(body.get("revision"))
        async with self.cloud.db.acquire() as lock:
            await lock.execute("select pg_advisory_lock($1)", PUBLISH_LOCK_KEY)
            try:
                return await self._publish(draft_id, revision, by)
            finally:
                await lock.execute("select pg_advisory_unlock($1)", PUBLISH_LOCK_KEY)

    async def _publish(self, draft_id: str, revision: int, by: Operator) -> tuple[dict[str, Any], bool]:
        done = await self.cloud.db.fetchrow("select * from rule_book_publications where draft_id = $1 and "
                                            "revision = $2", draft_id, revision)
        if done is not None:
            return self._publication(done), False
        row = await self.cloud.db.fetchrow("select * from rule_book_drafts where draft_id = $1 and revision = $2",
                                           draft_id, revision)
        if row is None:
            raise Refusal("not_found", f"no draft {draft_id!r} revision {revision}")
        newest = await self.cloud.db.fetchval("select max(version) from world_versions")
        if newest is not None and newest != self.world_admin.version:  # another process changed the world
            raise Refusal("unavailable", f"this API process is catching up with world version {newest}; retry in a "
                                         "moment")
        in_force = self.cloud.world.rule_book.version
        if row["based_on_version"] != in_force:
            raise Refusal("exists", f"draft {draft_id} was made from rule book version {row['based_on_version']}, "
                                    f"but version {in_force} is in force now (published meanwhile): start a new draft "
                                    "from the book in force")
        book = {**json.loads(row["book"]), "version": in_force + 1}
        await self.world_admin.change("rule_book", book, f"draft {draft_id} revision {revision}", by=by)
        now = self.cloud.now_ms()
        version = self.cloud.world.rule_book.version
        async with self.cloud.db.acquire() as conn, conn.transaction():
            pub = await conn.fetchrow(
                "insert into rule_book_publications (draft_id, revision, rule_book_version, published_by, published_ms) "
                "values ($1, $2, $3, $4, $5) on conflict do nothing returning *", draft_id, revision, version,
                by.username, now)
            if pub is None:  # another process published it in the meantime: theirs is the publication
                pub = await conn.fetchrow("select * from rule_book_publications where draft_id = $1 and revision = $2",
                                          draft_id, revision)
            else:
                await record(conn, now, by, "rule_book.draft.publish", f"rule_book_draft:{draft_id}:{revision}",
                             {"rule_book_version": in_force}, {"rule_book_version": version})
        return self._publication(pub), True

    async def _book_for(self, body: dict[str, Any]) -> tuple[RuleBook, bool]:
        """The book a preview prices with: an inline draft, a saved draft's revision, or the one in force."""
        if body.get("rule_book") is not None:
            return self._validated(body["rule_book"])[0], True
        if body.get("draft_id") is not None:
            draft = await self.get(_draft_id(body["draft_id"]),
                                   _revision(body["revision"]) if body.get("revision") is not None else None)
            return self._validated(draft["rule_book"])[0], True
        return self.cloud.world.rule_book, False

    async def preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """`POST /operator/rule-book/preview`: the basket priced with a book, and what each rule did."""
        world = self.cloud.world
        book, is_draft = await self._book_for(body)
        channel = body.get("channel", "offline")
        if channel not in ("offline", "online"):
            raise Refusal("invalid", "channel: offline (at a till) or online")
        store_id = body.get("store_id") or ""
        if not isinstance(store_id, str):
            raise Refusal("invalid", "store_id: a store id (text), or none for the chain")
        if store_id and store_id not in world.stores:
            raise Refusal("invalid", f"store_id: unknown store {store_id!r}")
        level = body.get("member_level") or None
        if level is not None and (not isinstance(level, str) or not LEVEL_RE.match(level)):
            raise Refusal("invalid", f"member_level: {level!r} is not a member level (lower-case letters, digits, _)")
        at = body.get("at")
        if at and not isinstance(at, str):
            raise Refusal("invalid", "at: an RFC 3339 time, e.g. 2026-12-01T09:00:00+08:00")
        at_ms = self.cloud.now_ms() if not at else parse_rfc3339(at, "at")
        lines, refused = preview_lines(world.catalogue, body.get("lines"), channel)
        capped = capped_rules(book.rules)
        views = await self.cloud.actors.budgets.budgets([r.id for r in capped]) if capped else {}
        ctx = PricingContext(channel=channel, store_id=store_id, now_ms=at_ms, member_level=level,
                             new_member=body.get("new_member") is True,
                             coupons=_ids(body.get("coupons"), "coupons"),
                             formed_groups=_ids(body.get("formed_groups"), "formed_groups"),
                             budgets_left=budgets_left(capped, views))
        answer = explain(world.catalogue, book, lines, ctx)
        return {**answer, "draft": is_draft, "at": to_rfc3339(at_ms), "refused_lines": refused}

    async def schedule(self, at_ms: int | None = None) -> dict[str, Any]:
        """The book in force rule by rule: type, when, where, who for, status at `at_ms`, and budget used."""
        book = self.cloud.world.rule_book
        at = self.cloud.now_ms() if at_ms is None else at_ms
        capped = capped_rules(book.rules)
        views = await self.cloud.actors.budgets.budgets([r.id for r in capped]) if capped else {}
        return {"rule_book_version": book.version, "at": to_rfc3339(at), "rules": rules_view(book, at, views)}


def rules_view(book: RuleBook, at_ms: int, views: dict[str, dict]) -> list[dict[str, Any]]:
    """Each rule of `book` as the promotions list shows it (pure)."""
    return [{"rule_id": r.id, "type": r.TYPE, "name": r.name, "channels": list(r.channels), "stores": list(r.stores),
             "starts_at": to_rfc3339(r.starts_ms) if r.starts_ms else None,
             "ends_at": to_rfc3339(r.ends_ms) if r.ends_ms else None, "daily": list(r.daily),
             "member_levels": list(r.member_levels), "status": schedule_status(r, at_ms), "budget_fen": r.budget_fen,
             "budget_used_fen": views.get(r.id, {}).get("used", 0), "per_member_limit": r.per_member_limit}
            for r in book.rules]


def _ids(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and RULE_ID_RE.match(v) for v in value):
        raise Refusal("invalid", f"{name}: a list of rule ids")
    return tuple(value)


def preview_lines(catalogue, items: Any, channel: str) -> tuple[list[BasketLine], list[dict[str, Any]]]:
    """The basket's lines; a line that cannot be priced is refused alone (with its index and why), never the rest."""
    if not isinstance(items, list) or not items:
        raise Refusal("invalid", "lines: a list of {sku, qty} (pieces) or {sku, weight_g} (sold by the kg)")
    if len(items) > PREVIEW_LINES_MAX:
        raise Refusal("invalid", f"lines: at most {PREVIEW_LINES_MAX} lines in a preview")
    lines, refused = [], []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict) or not isinstance(item.get("sku"), str):
                raise ProtocolError("a line is {sku, qty} or {sku, weight_g}, its sku a text")
            product = catalogue.get(item["sku"])
            if channel not in product.channels:
                raise ProtocolError(f"{product.sku} ({product.name}) is not sold {channel}")
            qty, grams = item.get("qty", 0), item.get("weight_g", 0)
            if type(qty) is not int or type(grams) is not int:
                raise ProtocolError("qty and weight_g are whole numbers")
            if product.weighed and not grams:
                grams, qty = qty, 0  # a weighed product's quantity is its grams, as the mall's cart sends it
            if (grams if product.weighed else qty) <= 0 or (product.weighed and qty) or (not product.weighed and grams):
                how = "kg: give weight_g" if product.weighed else "piece: give qty"
                raise ProtocolError(f"{product.sku} is sold by the {how} (> 0)")
            lines.append(BasketLine(sku=product.sku, qty=qty, weight_g=grams, use_by=str(item.get("use_by") or "")))
        except ProtocolError as exc:
            sku = item.get("sku") if isinstance(item, dict) else None
            refused.append({"index": i, "sku": sku if isinstance(sku, str) else None, "reason": str(exc)})
    if not lines:
        raise Refusal("invalid", "lines: no line could be priced: " + "; ".join(
            f"line {r['index']}: {r['reason']}" for r in refused))
    return lines, refused


def of(services) -> RuleBookDrafts:
    """The drafts service over this process's cloud and world admin (read at the call: wiring may replace the
    world admin after the services are made). Stateless: its state is in PostgreSQL and the world."""
    return RuleBookDrafts(services.cloud, services.world_admin)
