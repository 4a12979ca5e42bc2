# ruff: noqa: E501 - Chinese characters count double in the line width; the sentences are kept whole
"""The words of the mall's local-services pages (issue 21 item 7: cloud/mall/services.py), appended to the mall's
catalogue by `cloud/mall/i18n.py` like words_mall2.py (both languages name every word). Pure data."""
from __future__ import annotations

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "svc_title": "到店服务", "svc_none": "这家门店暂未提供预约服务", "svc_pick_store": "请先选择门店，再查看可预约的服务",
        "svc_minutes": "{n} 分钟", "svc_free": "免费", "svc_pay_at_store": "到店服务时付款",
        "svc_book_it": "预约", "svc_day": "选择日期", "svc_time": "选择时间", "svc_no_times": "这一天没有可预约的时间，请换一天",
        "svc_book": "确认预约", "svc_booking": "正在预约…", "svc_booked": "预约成功！{when} 请准时到店",
        "svc_taken": "这个时间刚刚被别人约走了，请选择其他时间", "svc_not_offered": "这个时间不能预约（不在服务时间内或已过时），请选择其他时间",
        "svc_my_bookings": "我的预约", "svc_no_bookings": "还没有预约", "svc_cancel": "取消预约",
        "svc_cancelled": "已取消", "svc_status_booked": "已预约", "svc_status_cancelled": "已取消",
        "svc_with": "服务人员", "svc_left": "剩 {n} 位", "svc_choose_time": "请先选择一个时间",
        "svc_weekday_1": "周一", "svc_weekday_2": "周二", "svc_weekday_3": "周三", "svc_weekday_4": "周四",
        "svc_weekday_5": "周五", "svc_weekday_6": "周六", "svc_weekday_7": "周日", "svc_hours": "服务时间",
        "svc_sign_in": "登录后预约", "svc_too_many": "您已有 5 个未到期的预约，请先取消一个再预约",
    },
    "en": {
        "svc_title": "In-store services", "svc_none": "This store offers no services to book yet",
        "svc_pick_store": "Choose a store first to see the services you can book",
        "svc_minutes": "{n} min", "svc_free": "Free", "svc_pay_at_store": "paid at the store when served",
        "svc_book_it": "Book", "svc_day": "Choose a day", "svc_time": "Choose a time",
        "svc_no_times": "No free times on this day: try another day", "svc_book": "Book this time",
        "svc_booking": "Booking…", "svc_booked": "Booked! Please come to the store at {when}",
        "svc_taken": "Someone has just booked that time: please choose another time",
        "svc_not_offered": "That time cannot be booked (outside the service hours or too soon): please choose another time",
        "svc_my_bookings": "My bookings", "svc_no_bookings": "No bookings yet", "svc_cancel": "Cancel booking",
        "svc_cancelled": "Cancelled", "svc_status_booked": "Booked", "svc_status_cancelled": "Cancelled",
        "svc_with": "With", "svc_left": "{n} left", "svc_choose_time": "Choose a time first",
        "svc_weekday_1": "Mon", "svc_weekday_2": "Tue", "svc_weekday_3": "Wed", "svc_weekday_4": "Thu",
        "svc_weekday_5": "Fri", "svc_weekday_6": "Sat", "svc_weekday_7": "Sun", "svc_hours": "Service hours",
        "svc_sign_in": "Sign in to book", "svc_too_many": "You already hold 5 bookings ahead: cancel one to book another",
    },
}
assert WORDS["zh"].keys() == WORDS["en"].keys(), "both languages name every word"
