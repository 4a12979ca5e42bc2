"""The mall's words come from gettext catalogues (cloud/mall/locale/*/LC_MESSAGES/mall.po, read with Babel): every
word a template, the mall's Python or a page's script uses is in both catalogues (the words of a domain state the
scripts build by name too), and a problem the API answers is said in the page's language, never as raw JSON and
never with English on a Chinese page."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from cloud.http.problems import REFUSALS
from cloud.mall import i18n, problems
from protocol.order_lifecycle import SHOWN_STATUSES

MALL = Path(i18n.__file__).parent
WORD_IN_TEMPLATE = re.compile(r"\bw\.([a-z_][a-z0-9_]*)|\bw\[['\"]([a-z_][a-z0-9_]*)['\"]\]")
WORD_IN_PYTHON = re.compile(r"(?:\bw|words\([^)]*\))\[['\"]([a-z_][a-z0-9_]*)['\"]\]")
WORD_IN_JS = re.compile(r"\bW\.([a-z_][a-z0-9_]*)|\bW\[['\"]([a-z_][a-z0-9_]*)['\"]\]")
# words a script or template builds from a state's name: prefix -> the states it can be asked for
BUILT = {"status_": SHOWN_STATUSES, "as_": ("requested", "approved", "refused", "refunded"),
         "level_": ("regular", "silver", "gold", "platinum"), "shelf_": tuple(i18n.SHELVES)}
DICT_METHODS = {"get", "items", "keys", "values", "format"}


def used_words() -> set[str]:
    used: set[str] = set()
    for template in (MALL / "templates").glob("*.html"):
        used |= {a or b for a, b in WORD_IN_TEMPLATE.findall(template.read_text())}
    for module in MALL.glob("*.py"):
        used |= set(WORD_IN_PYTHON.findall(module.read_text()))
    for script in (MALL / "static").glob("*.js"):
        used |= {a or b for a, b in WORD_IN_JS.findall(script.read_text())}
    used |= {prefix + state for prefix, states in BUILT.items() for state in states}
    used |= set(problems.BY_TYPE.values()) | {word for word, _ in problems.SENTENCES}
    return used - DICT_METHODS


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_every_word_the_pages_use_is_in_each_catalogue(lang):
    used = used_words()
    assert len(used) > 250  # the scan found the pages' words (a broken pattern would find none and pass)
    assert sorted(used - i18n.CATALOGUE[lang].keys()) == []


def test_the_catalogues_are_gettext_files_read_with_babel_naming_the_same_ids():
    for locale in i18n.LOCALES.values():
        assert (MALL / "locale" / locale / "LC_MESSAGES" / "mall.po").is_file()
    assert i18n.CATALOGUE["zh"].keys() == i18n.CATALOGUE["en"].keys()
    assert i18n.words("zh")["brand"] == "鲜网商城" and i18n.words("en")["brand"] == "FreshMesh Mall"
    assert i18n.words("fr") is i18n.CATALOGUE["zh"]  # an unknown language: Simplified Chinese
    assert not (MALL / "words_mall2.py").exists()  # one catalogue, not a second word list beside it


def test_a_word_missing_in_one_language_is_left_out_and_found_missing(tmp_path, monkeypatch):
    """An untranslated entry (an empty msgstr) is not shown as its id: it is missing, which the test above names."""
    po = (MALL / "locale" / "en" / "LC_MESSAGES" / "mall.po").read_text()
    gapped = po.replace('msgid "slot_full"\nmsgstr "full"', 'msgid "slot_full"\nmsgstr ""')
    assert gapped != po
    (tmp_path / "en" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "en" / "LC_MESSAGES" / "mall.po").write_text(gapped)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    assert "slot_full" not in i18n.load_catalogue("en") and "slot_left" in i18n.load_catalogue("en")


def test_no_english_words_on_chinese_pages():
    """A Chinese word is Chinese: letters only where the chain's names or units are (QR, PLU, kg-free)."""
    allowed = {"PLU", "QR", "erase", "JSON"}
    for key, text in i18n.CATALOGUE["zh"].items():
        if key == "language":
            continue  # the switch to English says "English"
        latin = set(re.findall(r"[A-Za-z]+", re.sub(r"\{[a-z_]+\}", "", text)))
        assert latin <= allowed, f"{key}: {text}"


def test_every_problem_type_the_api_answers_has_a_word():
    answered = {type_ for _, type_ in REFUSALS.values() if type_ != "about:blank"}
    assert sorted(answered - problems.BY_TYPE.keys()) == []


@pytest.mark.parametrize(("status", "problem", "zh", "en"), [
    (409, {"type": "/problems/slot", "detail": "slot at S057 not available: the slot is full"},
     "这个时间段已约满，请换一个", "That slot is full: choose another"),
    (409, {"type": "/problems/payment", "detail": "payment refused: insufficient stored value"},
     "储值余额不足", "Not enough stored value"),
    (401, {"type": "/problems/unauthorized", "detail": "wrong code (4 tries left)"},
     "验证码不正确或已过期", "The code is wrong or has expired"),
    (409, {"type": "/problems/group-buy", "detail": "group G1 is full: all 3 places are taken", "reason": "full"},
     "拼团人数已满", "The group is full"),
    (409, {"type": "/problems/coupon", "detail": "coupon C9: expired"},
     "优惠券不能使用", "The coupon cannot be used: coupon C9: expired"),
    (422, {"type": "about:blank", "detail": "location: lat must be a number"},
     "填写有误", "Something is not filled in right: location: lat must be a number"),
    (409, {"type": "about:blank", "detail": "the account cannot be erased now: stored value of 5000 fen is left on "
                                            "the account and would be lost: spend it or ask a store for a refund first"},
     "账户里还有储值余额，注销会作废：请先用完或到门店退款",
     "Stored value is left on the account and would be lost: spend it or ask a store for a refund first"),
    (404, {"type": "about:blank", "detail": "no order X1"}, "no order X1", "no order X1"),
    (502, None, "出错了，请稍后再试", "Something went wrong, please try again"),
])
def test_a_problem_is_said_in_the_pages_language(status, problem, zh, en):
    assert problems.sentence(status, problem, "zh") == zh
    assert problems.sentence(status, problem, "en") == en


def test_the_sentence_patterns_run_in_the_pages_javascript_too():
    """The page's RegExp reads the same patterns: no Python-only syntax (named groups, look-behind, inline flags)."""
    table = problems.for_page()
    for word, pattern in table["sentences"]:
        assert "(?P" not in pattern and "(?<" not in pattern and "(?i" not in pattern, word
        re.compile(pattern)
    assert table["types"] == problems.BY_TYPE
