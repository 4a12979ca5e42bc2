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
        # members and money on the till page (edge/till/money_routes.py)
        "member_panel": "会员信息", "new_member": "新会员", "register": "注册新会员", "register_do": "注册",
        "phone": "手机号", "registered": "已注册新会员", "already_member": "该手机号已是会员", "member_code": "会员码",
        "needs_cloud_register": "注册会员需要连接云端，本机现在离线：可以不登记会员继续结账",
        "apply": "使用", "no_coupons": "暂无可用优惠券", "valid_until": "有效期至", "due": "应收",
        "exact": "足额", "next_yuan": "凑整", "points_pay": "积分抵扣", "points_worth": "{points} 积分可抵 ¥{value}",
        "points_limit": "本单最多可用 {max} 积分（会员有 {have} 积分）", "points_none": "本单不能用积分",
        "wallet": "钱包(模拟)", "wallet_waiting": "等待顾客付款…", "wallet_paid": "钱包已付款",
        "wallet_failed": "钱包付款失败", "wallet_timeout": "钱包超时未确认", "retry": "重试",
        "wallet_scan": "请顾客用钱包扫描付款码", "split": "组合支付", "split_none": "不拆分", "split_first": "先付",
        "split_rest": "其余用现金或钱包", "rest_due": "其余应收",
        "wallet_offline": "钱包支付需要连接云端，本机现在离线：请收现金",
        "sv_offline": "离线时储值消费超出离线限额，需要云端确认：请改收现金（或减少储值部分）",
        "reprint": "重打小票", "printed": "已打印", "tenders": "支付明细", "cashier": "收银员", "points_word": "积分",
        # shifts, pickups, returns, store tasks (edge/till/counter_routes.py)
        "sign_in": "收银员登录", "cashier_id": "收银员编号", "pin": "密码", "enter": "登录", "clear_pin": "清除",
        "lockout_note": "连续输错 {n} 次密码，该编号锁定 {m} 分钟", "open_float": "开班备用金",
        "float_amount": "备用金总额 (¥)", "by_denomination": "按面额点数", "denomination": "面额", "pieces": "张/枚",
        "start_shift": "开始收银", "close_shift": "交班结算", "count_drawer": "点钞（按面额）", "check": "核对",
        "confirm_close": "确认交班", "cash_up": "交班对账", "method": "支付方式", "expected": "应有", "counted": "实点",
        "difference": "差额", "float": "备用金", "cash_sales": "现金销售",
        "cash_sales_net": "现金销售（已扣找零）", "change_given": "找零",
        "cash_topups": "现金充值", "cash_refunds": "现金退款", "sales": "销售笔数", "returns": "退货笔数",
        "voids": "作废笔数", "shift": "班次", "opened": "开班", "closed": "交班",
        "wallet_sim": "电子钱包", "points_method": "积分", "short": "短款", "over": "长款", "balanced": "账实相符",
        "shift_closed": "已交班，报告已保存并上传总部", "pickup": "自提", "pickup_prompt": "扫描或输入提货码 / 二维码",
        "look_up": "查询", "hand_over": "交付", "handed_over": "已交付", "order": "订单", "customer": "顾客",
        "status": "状态", "qty": "数量", "return": "退货", "receipt_prompt": "扫描或输入小票号 / 小票二维码",
        "can_return": "可退", "sold": "已售", "returned": "已退", "reason": "原因", "refund": "退款",
        "resaleable": "可再售", "spoiled": "变质", "expired": "过期", "damaged": "破损", "other": "其他",
        "do_return": "确认退货", "refund_receipt": "退货单", "refunded_by": "退款方式", "store_tasks": "门店作业",
        "picking": "拣货", "stocktakes": "盘点", "receivings": "收货", "shrinkage": "报损", "transfers": "调拨",
        "back_to_till": "返回收银", "read_only": "只读列表", "jin": "斤", "per_jin": "/斤", "signed_in_as": "当前收银员",
        "nothing": "无",
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
        # members and money on the till page (edge/till/money_routes.py)
        "member_panel": "Member", "new_member": "New member", "register": "Register a new member",
        "register_do": "Register", "phone": "Phone", "registered": "New member registered",
        "already_member": "This phone is a member already", "member_code": "Member code",
        "needs_cloud_register": "Registering a member needs the cloud and this box is offline: the sale can go on "
                                "without a member",
        "apply": "Apply", "no_coupons": "No coupons to use", "valid_until": "valid until", "due": "Due",
        "exact": "Exact", "next_yuan": "Next", "points_pay": "Points", "points_worth": "{points} points pay ¥{value}",
        "points_limit": "at most {max} points on this sale (the member has {have})",
        "points_none": "no points on this sale", "wallet": "Wallet (sim)", "wallet_waiting": "Waiting for the customer…",
        "wallet_paid": "Wallet paid", "wallet_failed": "Wallet payment failed",
        "wallet_timeout": "Wallet: no answer in time",
        "retry": "Retry", "wallet_scan": "The customer scans the pay code with the wallet", "split": "Split",
        "split_none": "no split", "split_first": "First part", "split_rest": "the rest by cash or wallet",
        "rest_due": "Rest due", "wallet_offline": "The wallet needs the cloud and this box is offline: take cash",
        "sv_offline": "Offline: stored value over the offline limit needs the cloud; take cash (or a smaller "
                      "stored-value part)",
        "reprint": "Reprint", "printed": "Printed", "tenders": "Tenders", "cashier": "Cashier", "points_word": "points",
        # shifts, pickups, returns, store tasks (edge/till/counter_routes.py)
        "sign_in": "Cashier sign-in", "cashier_id": "Cashier id", "pin": "PIN", "enter": "Sign in", "clear_pin": "Clear",
        "lockout_note": "{n} wrong PINs in a row lock the id for {m} minutes", "open_float": "Opening float",
        "float_amount": "Float total (¥)", "by_denomination": "Count by denomination", "denomination": "Denomination",
        "pieces": "pieces", "start_shift": "Start selling", "close_shift": "Close shift",
        "count_drawer": "Count the drawer", "check": "Check", "confirm_close": "Close the shift", "cash_up": "Cash-up",
        "method": "Method", "expected": "Expected", "counted": "Counted", "difference": "Difference", "float": "Float",
        "cash_sales": "Cash sales",
        "cash_sales_net": "Cash sales (change taken off)", "change_given": "Change given", "cash_topups": "Cash top-ups",
        "cash_refunds": "Cash refunds", "sales": "Sales", "returns": "Returns", "voids": "Voids", "shift": "Shift",
        "opened": "Opened", "closed": "Closed", "wallet_sim": "Wallet", "points_method": "Points",
        "short": "short", "over": "over", "balanced": "balanced",
        "shift_closed": "Shift closed: the report is kept and sent to HQ", "pickup": "Pickup",
        "pickup_prompt": "Scan or type the pickup code / QR", "look_up": "Look up", "hand_over": "Hand over",
        "handed_over": "handed over", "order": "Order", "customer": "Customer", "status": "Status", "qty": "Qty",
        "return": "Return", "receipt_prompt": "Scan or type the receipt no. / receipt QR", "can_return": "Returnable",
        "sold": "Sold", "returned": "Returned", "reason": "Reason", "refund": "Refund", "resaleable": "resaleable",
        "spoiled": "spoiled", "expired": "expired", "damaged": "damaged", "other": "other", "do_return": "Return these",
        "refund_receipt": "Refund receipt", "refunded_by": "Refunded by", "store_tasks": "Store tasks",
        "picking": "Picking", "stocktakes": "Stocktakes", "receivings": "Receiving", "shrinkage": "Shrinkage",
        "transfers": "Transfers", "back_to_till": "Back to the till", "read_only": "read-only list", "jin": "jin",
        "per_jin": "/jin", "signed_in_as": "Cashier", "nothing": "none",
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
