"""The mall's words in Simplified Chinese (default) and English, read once at start from the gettext catalogues
`cloud/mall/locale/<locale>/LC_MESSAGES/mall.po` with Babel (`read_po` builds each catalogue in memory: there is no
compile step), as the till does (edge/till/i18n.py); the categories as customers know them, and the number formats
shown (yuan with two decimals, kg with three). Templates look words up as `w.<id>` and the pages' scripts as
`Mall.words.<id>`: the ids are the catalogues' msgids. Pure after loading."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from cloud.gettext_words import read_po_words
from protocol.money import format_fen, format_kg

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

# the world's product categories as the mall's shelves (eggs and dairy share one)
SHELVES: dict[str, tuple[str, ...]] = {"vegetables": ("vegetables",), "fruit": ("fruit",), "meat": ("meat",),
                                       "seafood": ("seafood",), "eggs_dairy": ("eggs", "dairy"), "packed": ("packed",)}

LOCALES = {"zh": "zh_Hans", "en": "en"}  # the page's language -> the catalogue's locale directory
LOCALE_DIR = Path(__file__).parent / "locale"


def load_catalogue(lang: str) -> dict[str, str]:
    """One language's catalogue as msgid -> translation. Untranslated entries are left out: a gap fails the
    catalogue test (tests/unit/test_mall_i18n.py) rather than showing an English word on a Chinese page."""
    return read_po_words(LOCALE_DIR / LOCALES[lang] / "LC_MESSAGES" / "mall.po", LOCALES[lang])


CATALOGUE: dict[str, dict[str, str]] = {lang: load_catalogue(lang) for lang in LANGS}


def lang_of(asked: str | None) -> str:
    return asked if asked in LANGS else DEFAULT_LANG


def words(lang: str) -> dict[str, str]:
    return CATALOGUE[lang_of(lang)]


yuan = format_fen  # integer fen as yuan with two decimals: 2350 -> "23.50"
kg = format_kg  # grams as kg with three decimals: 1250 -> "1.250"


def china_time(rfc3339: str | None) -> str:
    """An RFC 3339 moment as the stores' clock shows it (China time): '2026-12-01T00:00:00Z' -> '2026-12-01 08:00'."""
    if not rfc3339:
        return ""
    moment = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return moment.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")


def shelf_of(category: str) -> str | None:
    """The mall shelf a world category is shown on (None: not one of the mall's shelves)."""
    return next((shelf for shelf, cats in SHELVES.items() if category in cats), None)
