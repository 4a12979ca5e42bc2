"""The box's refusals as the cashier reads them: a stable refusal code for each sentence the core says (in English,
as the JSON lane API answers it), and that code's sentence from the till's catalogue in the page's language.

Guarantees:
- The JSON lane API is untouched: its problem+json `detail` stays the core's English sentence. Only the till page's
  endpoints answer with `detail` in the page's language, with the `code` and the English sentence (`detail_en`)
  beside it, so nothing the core said is lost.
- A refusal no rule here knows is still shown: as `refusal.other` with the core's sentence inside it (code `other`).
Pure: no I/O.
"""
from __future__ import annotations

import re

from edge.till import i18n

# (code, the core's English sentence): the first that matches names the refusal; its named groups fill the sentence
RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple((code, re.compile(pattern)) for code, pattern in (
    ("cash_short", r"cash tendered (?P<tendered>-?[\d.]+) is less than the total (?P<total>-?[\d.]+)"),
    ("sv_short", r"stored value short: balance after the sale would be (?P<left>-?[\d.]+) "
                 r"\(limit (?P<limit>-?[\d.]+) while offline\)"),
    ("sv_offline_limit", r"stored value offline limit: (?P<spent>-?[\d.]+) already spent here without the cloud, "
                         r"(?P<more>-?[\d.]+) more would pass the offline allowance of (?P<allowance>-?[\d.]+)"),
    ("sv_insufficient", r"^insufficient stored value|balance .*insufficient|insufficient balance"),
    ("points_insufficient", r"^insufficient points"),
    ("no_member", r"identify the member first"),
    ("member_not_found", r"^no member with (?:phone|member_code) (?P<what>.+) in this store's member cache"),
    ("unknown_code", r"^no product with (?:barcode|GTIN|item code) (?P<code>\S+)"),
    ("unknown_product", r"^unknown product '?(?P<code>[^']+)'?$"),
    ("cart_empty", r"^the cart is empty"),
    ("sold_by_piece", r"^(?P<name>.+) is sold by the piece; scan it"),
    ("scale_zero", r"^the scale reads zero"),
    ("no_scale", r"^no scale configured on this box"),
    ("no_catalogue", r"^no catalogue yet"),
    ("signed_out", r"^no cashier is signed in at lane (?P<lane>\S+?):"),
    ("coupon_in_cart", r"^coupon \S+: already in this cart"),
    ("coupon_expired", r"^coupon \S+: (?:expired|not valid yet)"),
    ("coupon_unknown", r"^coupon \S+: not among this member's coupons"),
    ("bad_pin", r"^cashier (?P<cashier>\S+) could not sign in"),
    ("shift_open", r"^cashier (?P<cashier>\S+) is signed in at lane (?P<lane>\S+): close their shift first"),
    ("handed_over", r"^order (?P<order>\S+) \(code \S+\) was handed over already"),
    ("return_refused", r"^return against \S+ \S+ refused: (?P<sku>[^\s:]+):? \d+ \S+ asked, but"),
    ("split_first_too_big", r"^split: the first tender of (?P<first>[\d.]+) must be less than the total "
                            r"(?P<total>[\d.]+)"),
))


def classify(detail: str) -> tuple[str, dict[str, str]]:
    """The refusal code of the core's English sentence, and the parts the localised sentence names."""
    for code, pattern in RULES:
        m = pattern.search(detail)
        if m is not None:
            return code, {k: v for k, v in m.groupdict().items() if v is not None}
    return "other", {"detail": detail}


_CJK = re.compile(r"[\u4e00-\u9fff]")
_WITH_CAUSE = re.compile(r"^(?P<said>.*?)\s*[(（](?P<cause>[^()（）]*)[)）]$")


def localised(detail: str, lang: str) -> tuple[str, str]:
    """(code, the sentence in `lang`) for the core's English `detail`. A sentence the page already said in Chinese
    (the page's own refusals: the wallet offline, registering offline) stays; its English cause in brackets, if it
    names one, is localised too."""
    if _CJK.search(detail):
        m = _WITH_CAUSE.match(detail)
        if m is not None and _CJK.search(m["cause"]) and not _CJK.search(m["said"]):  # the core's, then the page's
            code, said = localised(m["said"], lang)
            return code, f"{said}（{m['cause']}）"
        if m is None or _CJK.search(m["cause"]):
            return "page", detail
        code, cause = localised(m["cause"], lang)
        return code, f"{m['said']}（{cause}）" if code != "other" else detail
    code, parts = classify(detail)
    words = i18n.words(lang)
    template = words.get(f"refusal.{code}") or words["refusal.other"]
    try:
        return code, template.format(**parts)
    except (KeyError, IndexError):  # a catalogue entry naming a part the rule does not capture: say it whole
        return code, words["refusal.other"].format(detail=detail)
