"""The pure helpers of the services pages: the mall's day picker (store days, China time) and the back office's
choice of store and day, and the mall's words for services in both languages."""
from __future__ import annotations

from datetime import date

from cloud.mall import i18n as mall_i18n
from cloud.mall.bookings import days
from cloud.mall.words_services import WORDS
from cloud.office.services import store_and_day
from protocol import service_slots as core

LATE_EVENING_UTC = core.day_start_ms(date(2026, 12, 7)) - 3600_000  # 23:00 on 6 Dec in China, 15:00 UTC


def test_the_day_picker_starts_on_the_store_s_today_and_keeps_a_chosen_day_of_its_own():
    shown, picked = days(LATE_EVENING_UTC, None)
    assert shown[0]["date"] == "2026-12-06" and shown[0]["weekday"] == 7 and len(shown) == 7
    assert picked == date(2026, 12, 6)
    assert days(LATE_EVENING_UTC, "2026-12-08")[1] == date(2026, 12, 8)
    assert days(LATE_EVENING_UTC, "2027-01-30")[1] == date(2026, 12, 6)  # not offered: today
    assert days(LATE_EVENING_UTC, "garbage")[1] == date(2026, 12, 6)


def test_the_office_shows_the_asked_store_else_the_operator_s_own_else_the_first():
    stores = ["S001", "S076"]
    assert store_and_day("S076", "2026-12-09", None, stores, LATE_EVENING_UTC) == ("S076", "2026-12-09")
    assert store_and_day(None, None, "S076", stores, LATE_EVENING_UTC) == ("S076", "2026-12-06")
    assert store_and_day("S999", "12/09", None, stores, LATE_EVENING_UTC) == ("S001", "2026-12-06")
    assert store_and_day(None, None, None, [], LATE_EVENING_UTC) == (None, "2026-12-06")


def test_the_services_words_are_in_the_mall_s_catalogue_in_both_languages():
    for lang in mall_i18n.LANGS:
        assert set(WORDS[lang]) <= set(mall_i18n.words(lang))
    assert mall_i18n.words("en")["svc_taken"] != mall_i18n.words("zh")["svc_taken"]
