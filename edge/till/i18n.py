"""The till's words in Simplified Chinese (default) and English: a small dict catalogue per language (Babel's
extraction was more than this first increment needed), plus the number formats the till shows: yuan with two
decimals, kg with three. Pure functions, no I/O."""
from __future__ import annotations

import re

from protocol.money import format_fen

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

CATALOGUE: dict[str, dict[str, str]] = {
    "zh": {
        "title": "收银台", "lane": "收银通道", "scan": "扫码 / 输入条码后按回车", "member": "会员", "pay": "结账",
        "delete_line": "删除行", "void": "整单作废", "qty_plus": "数量+", "qty_minus": "数量-", "total": "合计",
        "subtotal": "原价合计", "discount": "优惠", "online": "在线", "offline": "离线",
        "outbox": "待同步", "oldest": "最早未同步销售", "ago": "前", "seconds": "秒", "none": "无",
        "scale": "电子秤", "stable": "稳定", "unstable": "不稳定", "overload": "超载", "tare": "去皮",
        "no_scale": "未连接电子秤", "empty_cart": "购物车为空：请扫码或按称重商品键", "plu": "称重商品",
        "member_prompt": "手机号或会员码", "find": "查找", "level": "等级", "points": "积分", "balance": "储值余额",
        "coupons": "优惠券", "cash": "现金", "stored_value": "储值", "tendered": "实收", "change": "找零",
        "paid": "已付", "receipt": "小票", "receipt_no": "小票号", "savings": "共节省", "close": "关闭",
        "confirm_void": "确定作废整单吗？", "yes": "确定", "no": "取消", "member_price": "会员价",
        "near_miss": "再买 {missing} 元{reward}", "off": "减 {amount}", "weight": "重量", "price": "金额",
        "offline_note": "网络已断开：照常收银，销售在恢复后自动上传", "survey": "扫码参与满意度调查",
        "paid_offline": "离线完成", "all": "全部", "language": "English",
    },
    "en": {
        "title": "Till", "lane": "Lane", "scan": "Scan / type a code, then Enter", "member": "Member", "pay": "Pay",
        "delete_line": "Delete line", "void": "Void", "qty_plus": "Qty +", "qty_minus": "Qty -", "total": "Total",
        "subtotal": "Subtotal", "discount": "Savings", "online": "Online", "offline": "Offline",
        "outbox": "Unsynced", "oldest": "Oldest unsynced sale", "ago": "ago", "seconds": "s", "none": "none",
        "scale": "Scale", "stable": "stable", "unstable": "unstable", "overload": "overload", "tare": "tare",
        "no_scale": "no scale connected", "empty_cart": "The cart is empty: scan or press a produce key", "plu": "Produce",
        "member_prompt": "Phone or member code", "find": "Find", "level": "Level", "points": "Points",
        "balance": "Balance", "coupons": "Coupons", "cash": "Cash", "stored_value": "Stored value",
        "tendered": "Tendered", "change": "Change", "paid": "Paid", "receipt": "Receipt", "receipt_no": "Receipt no.",
        "savings": "You saved", "close": "Close", "confirm_void": "Void the whole sale?", "yes": "Yes", "no": "No",
        "member_price": "member price", "near_miss": "spend {missing} more for{reward}", "off": " {amount} off",
        "weight": "Weight", "price": "Amount", "offline_note": "Network down: keep selling, sales upload when it is back",
        "survey": "Scan for the survey", "paid_offline": "completed offline", "all": "All", "language": "中文",
    },
}
assert CATALOGUE["zh"].keys() == CATALOGUE["en"].keys(), "both languages name every word"

# protocol/pricing/evaluator.py's near-miss text: "spend 3.20 more for 8.00 off (Rule name)"
_NEAR = re.compile(r"^spend (?P<missing>-?\d+\.\d{2}) more for (?P<reward>.+) \((?P<rule>.*)\)$")
_OFF = re.compile(r"^(?P<amount>-?\d+\.\d{2}) off$")


def lang_of(asked: str | None) -> str:
    return asked if asked in LANGS else DEFAULT_LANG


def words(lang: str) -> dict[str, str]:
    return CATALOGUE[lang_of(lang)]


def yuan(fen: int) -> str:
    """Integer fen as yuan with two decimals: 2350 -> '23.50'."""
    return format_fen(fen)


def kg(grams: int) -> str:
    """Grams as kg with three decimals: 1250 -> '1.250', -5 -> '-0.005'."""
    sign = "-" if grams < 0 else ""
    whole, rest = divmod(abs(grams), 1000)
    return f"{sign}{whole}.{rest:03d}"


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
