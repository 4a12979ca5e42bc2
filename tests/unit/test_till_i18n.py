"""The till's words come from gettext catalogues (edge/till/locale/*/LC_MESSAGES/till.po, read with Babel): every
word a template, the page's Python or its refusal rules use is in both catalogues; the chain's categories and
levels are said in Chinese; the core's English refusals get a stable code and a Chinese sentence on the page, and
the JSON lane API's English detail is left alone."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from edge.core.receipt_ticket import jin_text, receipt_bytes
from edge.till import i18n, refusals
from protocol import payments
from simulators.world import FRESH_FOOD, LEVELS

TILL = Path(i18n.__file__).parent
WORD_IN_TEMPLATE = re.compile(r"\bw\.([a-z_][a-z0-9_]*)|\bw\[['\"]([a-z_.][a-z0-9_.]*)['\"]\]")
WORD_IN_PYTHON = re.compile(r"(?:\bw|words\([^)]*\))\[['\"]([a-z_.][a-z0-9_.]*)['\"]\]")
WORD_IN_JS = re.compile(r"\bwords\.([a-zA-Z]+)")
JS_WORD_ATTR = re.compile(r"data-([a-z-]+)=\"\{\{ w\.([a-z_]+) \}\}\"")


def used_words() -> set[str]:
    used: set[str] = set()
    for template in (TILL / "templates").glob("*.html"):
        used |= {a or b for a, b in WORD_IN_TEMPLATE.findall(template.read_text())}
    for module in TILL.glob("*.py"):
        used |= set(WORD_IN_PYTHON.findall(module.read_text()))
    return used - {"get", "items", "keys"}  # dict methods a template may call on `w`


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_word_the_page_uses_is_in_each_catalogue(lang):
    used = used_words()
    assert len(used) > 120  # the scan found the templates' words (a broken pattern would find none and pass)
    assert sorted(used - i18n.CATALOGUE[lang].keys()) == []


def test_every_word_the_javascript_reads_is_handed_to_it_by_a_template():
    """The scripts read words from data attributes a template fills from the catalogue (`words.jin`)."""
    given = set()
    for template in (TILL / "templates").glob("*.html"):
        given |= {re.sub(r"-([a-z])", lambda m: m[1].upper(), attr) for attr, _ in JS_WORD_ATTR.findall(
            template.read_text())}
    for script in (TILL / "static").glob("*.js"):
        for word in WORD_IN_JS.findall(script.read_text()):
            assert word in given, f"{script.name} reads words.{word}, which no template gives it"


def test_the_catalogues_are_gettext_files_read_with_babel_and_say_the_same_ids():
    for locale in i18n.LOCALES.values():
        assert (TILL / "locale" / locale / "LC_MESSAGES" / "till.po").is_file()
    assert i18n.CATALOGUE["zh"].keys() == i18n.CATALOGUE["en"].keys()
    assert i18n.words("zh")["title"] == "收银台" and i18n.words("en")["title"] == "Till"


def test_categories_and_levels_are_said_in_chinese():
    for category, *_ in FRESH_FOOD:
        said = i18n.category(category, "zh")
        assert said != category and not re.search("[A-Za-z]", said), category
    assert [i18n.level(v, "zh") for v in ("regular", *LEVELS)] == ["普通会员", "银卡", "金卡", "白金卡"]
    assert i18n.category("toys", "zh") == "toys" and i18n.level(None, "zh") == "—"  # unknown: as it is, not lost


CORE_REFUSALS = [  # (what the core says in English, its code, what the zh page says)
    (payments.cash_change(100, 10218), "cash_short", "实收 1.00 元少于应收 102.18 元"),
    (payments.offline_shortfall(1000, 0, 0, 30000, 10000), "sv_offline_limit", None),
    (payments.offline_shortfall(-2000, 0, 0, 9000, 10000), "sv_short",
     "储值余额不足：结账后余额将为 -110.00 元（离线时下限 -100.00 元）"),
    ("no product with barcode 6901234567892", "unknown_code", "未知条码 6901234567892：本店没有这个商品"),
    ("stored value needs a member: identify the member first", "no_member", "请先识别会员（按 F2）"),
    ("points need a member: identify the member first", "no_member", "请先识别会员（按 F2）"),
    ("no member with phone 138****0000 in this store's member cache", "member_not_found", None),
    ("the cart is empty", "cart_empty", "购物车为空"),
    ("no cashier is signed in at lane 3: sign in at the till first", "signed_out", "收银通道 3 尚无收银员登录：请先登录"),
    ("cashier c1 could not sign in at lane 1: unknown cashier or wrong PIN", "bad_pin", None),
    ("insufficient stored value", "sv_insufficient", "储值余额不足"),
    ("the scale reads zero: put the item on the scale", "scale_zero", None),
]


@pytest.mark.parametrize(("english", "code", "chinese"), CORE_REFUSALS)
def test_a_core_refusal_has_a_stable_code_and_a_chinese_sentence(english, code, chinese):
    assert isinstance(english, str)
    got, said = refusals.localised(english, "zh")
    assert got == code
    if chinese is not None:
        assert said == chinese
    assert not re.search(r"[A-Za-z]{3,}", said), said  # no English word left (ids and amounts may stay)
    assert refusals.localised(english, "en")[0] == code


def test_an_unknown_refusal_is_still_shown_and_the_page_s_own_chinese_stays():
    said = refusals.localised("something new went wrong", "zh")
    assert said == ("other", "操作未能完成（详情：something new went wrong）")
    assert refusals.localised("something new went wrong", "en") == ("other", "something new went wrong")
    own = i18n.words("zh")["wallet_offline"]
    assert refusals.localised(own, "zh") == ("page", own)
    caused = f"{i18n.words('zh')['sv_offline']} ({payments.offline_shortfall(0, 0, 0, 30000, 10000)})"
    code, said = refusals.localised(caused, "zh")
    assert code == "sv_offline_limit" and said.startswith(i18n.words("zh")["sv_offline"])
    assert not re.search(r"[A-Za-z]{3,}", said), said


def test_the_core_s_sentence_with_the_page_s_note_is_said_in_chinese_with_the_note():
    note = i18n.words("zh")["lockout_note"].format(n=5, m=5)
    code, said = refusals.localised(f"cashier c1 could not sign in at lane 1: unknown cashier or wrong PIN ({note})",
                                    "zh")
    assert code == "bad_pin" and said == f"收银员 c1 登录失败：编号不存在或密码错误（{note}）"


def test_the_printed_receipt_shows_jin_where_the_store_says_so():
    facts = {"store_id": "S1", "lane": "1", "cashier_id": "", "sale_id": "X", "member": "", "survey_url": "",
             "offline": False, "lines": [{"name": "Pork", "qty": 1, "weight_g": 1250, "unit_price_fen": 2599,
                                          "amount_fen": 3249}], "rules": [], "savings_fen": 0, "total_fen": 3249,
             "tenders": [], "tendered_fen": 0, "change_fen": 0}
    assert jin_text(1250, 2599) == "2.500 斤 x 13.00/斤"
    assert "斤".encode("gb18030") not in receipt_bytes(facts)
    assert "2.500 斤 x 13.00/斤".encode("gb18030") in receipt_bytes({**facts, "show_jin": True})
