"""The till's words in Simplified Chinese (default) and English, read at start from the gettext catalogues
`edge/till/locale/<locale>/LC_MESSAGES/till.po` with Babel (`read_po` builds each catalogue in memory: there is no
compile step), plus the number formats the till shows: yuan with two decimals, kg with three, jin. The page's
templates look words up as `w.<id>` (`words(lang)`), whose message ids are the catalogue's msgids; a word missing
from a catalogue fails the catalogue test (tests/test_till_i18n.py), never the page. Pure after loading."""
from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from protocol.money import format_fen, format_kg

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"
LOCALES = {"zh": "zh_Hans", "en": "en"}  # the page's language -> the catalogue's locale directory
LOCALE_DIR = Path(__file__).parent / "locale"


def load_catalogue(lang: str) -> dict[str, str]:
    """One language's catalogue as msgid -> translation (untranslated entries are left out: a gap is a test
    failure, not an English word on a Chinese page)."""
    with open(LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / "till.po", "rb") as f:
        catalog = read_po(f, locale=LOCALES[lang])
    return {str(m.id): str(m.string) for m in catalog if m.id and m.string}


CATALOGUE: dict[str, dict[str, str]] = {lang: load_catalogue(lang) for lang in LANGS}

# protocol/pricing/evaluator.py's near-miss text: "spend 3.20 more for 8.00 off (Rule name)"
_NEAR = re.compile(r"^spend (?P<missing>-?\d+\.\d{2}) more for (?P<reward>.+) \((?P<rule>.*)\)$")
_OFF = re.compile(r"^(?P<amount>-?\d+\.\d{2}) off$")


def lang_of(asked: str | None) -> str:
    return asked if asked in LANGS else DEFAULT_LANG


def words(lang: str) -> dict[str, str]:
    return CATALOGUE[lang_of(lang)]


yuan = format_fen  # integer fen as yuan with two decimals: 2350 -> "23.50"
kg = format_kg  # grams as kg with three decimals: 1250 -> "1.250"


def jin(grams: int) -> str:
    """Grams as jin (1 jin = 500 g) with three decimals: 1250 -> '2.500'."""
    sign = "-" if grams < 0 else ""
    whole, rest = divmod(abs(grams) * 2, 1000)
    return f"{sign}{whole}.{rest:03d}"


def per_jin(fen_per_kg: int) -> str:
    """A price per kg as yuan per jin (half, to the fen, halves rounded up): 1299 -> '6.50'."""
    return format_fen((fen_per_kg + 1) // 2)


def near_miss(message: str, lang: str) -> str:
    """The evaluator's near-miss text in the till's language: 'spend 3.20 more for 8.00 off (X)' is
    '再买 3.20 元减 8.00（X）' in Chinese. A text of another shape is shown as it came (never dropped)."""
    m = _NEAR.match(message)
    if m is None:
        return message
    w = words(lang)
    off = _OFF.match(m["reward"])
    reward = w["off"].format(amount=off["amount"]) if off else (" " if lang == "en" else "") + m["reward"]
    text = w["near_miss"].format(missing=m["missing"], reward=reward)
    return f"{text}（{m['rule']}）" if lang == "zh" else f"{text} ({m['rule']})"


def category(name: str, lang: str) -> str:
    """A produce category's name on the page (the chain's category ids are English words); an id without a catalogue
    entry is shown as it is."""
    return words(lang).get(f"cat.{name}", name)


def level(name: str | None, lang: str) -> str:
    """A member level's name on the page ('gold' is 金卡); a level without a catalogue entry is shown as it is."""
    if not name:
        return "—"
    return words(lang).get(f"level.{name}", name)
