"""The satisfaction survey after a till sale (issue 17.5): `GET /surveys/{token}` shows it, `POST` answers it once.

Who signs the token, and why the box: the receipt is printed when the sale commits, offline too, so the link must
exist before the cloud has heard of the sale. The box signs `<store>.<sale>` with its survey key
(`protocol.points.survey_key`, derived from its own NATS password, which only it and the cloud's credential book
know); the cloud derives the same key. A box can therefore sign only for its own store id, and the cloud grants
points only for a sale of that store it has recorded (its SaleCommitted event, judged by the bridge like any fact
of that store) with a member, to that member: a store cannot mint tokens for another store's sales, nor pay
points for a sale it never reported.

Guarantees:
- A forged or altered token (wrong mac, another store's id, malformed) answers 403 and records nothing.
- A sale is answered once (`survey_answers.sale_id` is the key): a replay answers 409; its points are granted once
  (`GrantPoints` under `survey:<sale>`, journaled `answered` before, `granted` after; `sweep` finishes a grant a
  crash left half-way).
- Answers are checked (3 questions: two scores 1-5 and an optional comment of at most `COMMENT_MAX_CHARS`).
"""
from __future__ import annotations

import html
import json
import logging
from collections.abc import Awaitable, Callable

from actors.member_ledger import GrantPoints
from cloud.services.verdicts import Refusal
from protocol.clock import to_rfc3339
from protocol.money_saga import SAGA_GRACE_MS
from protocol.points import survey_key, token_parts, token_valid
from protocol.policy import SURVEY_POINTS

log = logging.getLogger("freshmesh.points")
COMMENT_MAX_CHARS = 500
SCORES = ("satisfaction", "freshness")  # 1-5 each
QUESTIONS = (("satisfaction", "本次购物满意度 (1-5) / How satisfied were you with this visit?"),
             ("freshness", "商品新鲜度 (1-5) / How fresh were the goods?"),
             ("comment", "还有什么想告诉我们的？ / Anything else you would like to tell us?"))
SWEEP_BATCH_MAX = 100


def survey_grant_id(sale_id: str) -> str:
    return f"survey:{sale_id}"


def check_answers(raw: dict) -> dict:
    """The answers as recorded, or Refusal("invalid") naming the first bad one."""
    answers: dict = {}
    for name in SCORES:
        value = raw.get(name)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            raise Refusal("invalid", f"{name}: a score from 1 to 5, not {str(value)[:20]!r}")
        answers[name] = value
    comment = raw.get("comment", "")
    if not isinstance(comment, str) or len(comment) > COMMENT_MAX_CHARS:
        raise Refusal("invalid", f"comment: text of at most {COMMENT_MAX_CHARS} characters")
    answers["comment"] = comment.strip()
    return answers


class Surveys:
    def __init__(self, cloud) -> None:
        self.cloud = cloud
        # set by the services: the member's points changed (the stores' member caches follow)
        self.on_balance_changed: Callable[[str], Awaitable[None]] | None = None

    def _verified(self, token: str) -> tuple[str, str]:
        """(store, sale) of a token the store's key signed; Refusal("forbidden") otherwise."""
        parts = token_parts(token)
        passwords = self.cloud.keys.store_passwords
        password = passwords(parts[0]) if parts is not None and passwords is not None else None
        if parts is None or not password or not token_valid(survey_key(password, parts[0]), token):
            raise Refusal("forbidden", "this survey link is not valid (altered, or not issued by a FreshMesh till)")
        return parts[0], parts[1]

    async def _sale(self, store: str, sale_id: str):
        sale = await self.cloud.db.fetchrow("select sale_id, store_id, member_id, total_fen, wall_ms from till_sales "
                                            "where sale_id = $1 and store_id = $2", sale_id, store)
        if sale is None:  # the sale's event may still be on its way from the store (offline: until it reconnects)
            raise Refusal("not_found", f"sale {sale_id} of store {store} has not reached us yet: try again later")
        if not sale["member_id"]:
            raise Refusal("not_found", f"sale {sale_id} was made without a member: it has no survey")
        return sale

    async def show(self, token: str) -> tuple[int, str]:
        """(status, the survey page): the form, or that it was answered already."""
        store, sale_id = self._verified(token)
        sale = await self._sale(store, sale_id)
        answered = await self.cloud.db.fetchrow("select * from survey_answers where sale_id = $1", sale_id)
        return (200, page(token, store, sale, answered))

    async def answer(self, token: str, raw: dict) -> dict:
        store, sale_id = self._verified(token)
        sale = await self._sale(store, sale_id)
        answers = check_answers(raw)
        made = await self.cloud.db.fetchval(
            """insert into survey_answers (sale_id, store_id, member_id, answers, points, state, answered_ms)
               values ($1, $2, $3, $4, $5, 'answered', $6) on conflict (sale_id) do nothing returning 1""",
            sale_id, store, sale["member_id"], json.dumps(answers, ensure_ascii=False), SURVEY_POINTS,
            self.cloud.now_ms())
        if not made:
            raise Refusal("exists", f"the survey of sale {sale_id} was answered already; its points were granted once")
        row = await self._grant(sale_id)
        return {"sale_id": sale_id, "store_id": store, "points_granted": row["points"], "state": row["state"],
                "answered_at": to_rfc3339(row["answered_ms"])}

    async def _grant(self, sale_id: str):
        row = await self.cloud.db.fetchrow("select * from survey_answers where sale_id = $1", sale_id)
        if row["state"] == "answered":
            result = await self.cloud.actors.member_ledger.send(GrantPoints(
                id=survey_grant_id(sale_id), member=row["member_id"], points=row["points"], why="survey"))
            if result.succeeded:
                await self.cloud.db.execute("update survey_answers set state = 'granted', granted_ms = $2 "
                                            "where sale_id = $1 and state = 'answered'", sale_id, self.cloud.now_ms())
                if self.on_balance_changed is not None:
                    await self.on_balance_changed(row["member_id"])
            else:
                log.error("survey points of sale %s not granted yet: %s", sale_id, result.settled.reason)
            row = await self.cloud.db.fetchrow("select * from survey_answers where sale_id = $1", sale_id)
        return row

    async def sweep(self) -> int:
        rows = await self.cloud.db.fetch("select sale_id from survey_answers where state = 'answered' and "
                                         "answered_ms < $1 limit $2", self.cloud.now_ms() - SAGA_GRACE_MS,
                                         SWEEP_BATCH_MAX)
        for row in rows:
            await self._grant(row["sale_id"])
        return len(rows)


def page(token: str, store: str, sale, answered) -> str:
    """The survey as a minimal server-rendered page, Chinese first (no script: a plain form posts it)."""
    e = html.escape
    head = (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width"><title>满意度调查 / Survey</title></head><body>'
            f'<h1>满意度调查 / Satisfaction survey</h1><p>门店 {e(store)} · 小票 {e(sale["sale_id"])}</p>')
    if answered is not None:
        return head + "<p>感谢您的反馈，本次调查已完成。/ Thank you: this survey was answered already.</p></body></html>"
    fields = []
    for name, text in QUESTIONS:
        if name in SCORES:
            options = "".join(f'<label><input type="radio" name="{name}" value="{v}" required> {v}</label> '
                              for v in range(1, 6))
            fields.append(f"<fieldset><legend>{e(text)}</legend>{options}</fieldset>")
        else:
            fields.append(f'<p><label>{e(text)}<br><textarea name="{name}" maxlength="{COMMENT_MAX_CHARS}">'
                          f"</textarea></label></p>")
    return (head + f'<form method="post" action="/surveys/{e(token)}">' + "".join(fields) +
            f'<p>完成即得 {SURVEY_POINTS} 积分 / {SURVEY_POINTS} points for answering</p>'
            '<button type="submit">提交 / Submit</button></form></body></html>')
