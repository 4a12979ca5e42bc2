"""The mall's words in Simplified Chinese (default) and English: one dict per language (both name every word), the
categories as customers know them, and the number formats shown (yuan with two decimals, kg with three).
Pure functions, no I/O."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from protocol.money import format_fen, format_kg

LANGS = ("zh", "en")
DEFAULT_LANG = "zh"

# the world's product categories as the mall's shelves (eggs and dairy share one)
SHELVES: dict[str, tuple[str, ...]] = {"vegetables": ("vegetables",), "fruit": ("fruit",), "meat": ("meat",),
                                       "seafood": ("seafood",), "eggs_dairy": ("eggs", "dairy"), "packed": ("packed",)}

CATALOGUE: dict[str, dict[str, str]] = {
    "zh": {
        "brand": "鲜网商城", "home": "首页", "cart": "购物车", "orders": "我的订单", "me": "我的", "sign_in": "登录",
        "sign_out": "退出登录", "search": "搜索", "search_hint": "商品名、PLU 或拼音首字母", "language": "English",
        "lang_label": "切换语言", "footer": "鲜网 · 到店自提与送货上门 · 价格以结算为准",
        "shelf_vegetables": "蔬菜", "shelf_fruit": "水果", "shelf_meat": "肉禽", "shelf_seafood": "海鲜",
        "shelf_eggs_dairy": "蛋奶", "shelf_packed": "包装食品", "categories": "分类", "scenes": "场景推荐",
        "promotions": "优惠专区", "flash_sales": "限时秒杀", "group_buys": "拼团", "time_limited": "限时优惠",
        "spend_x": "满减", "per_kg": "/千克", "per_piece": "/份", "member_price": "会员价", "list_price": "原价",
        "in_stock": "有货", "low_stock": "库存紧张", "out_of_stock": "暂时缺货", "presale": "预售",
        "presale_note": "到货后为您配送或备货", "presale_accept": "缺货时接受预售（到货后备货）",
        "add_to_cart": "加入购物车", "added": "已加入购物车",
        "weight": "重量", "quantity": "数量", "grams": "克", "store": "门店", "choose_store": "选择门店",
        "nearest": "按我的位置找最近的门店", "delivery_to": "送货地址", "your_store": "当前门店",
        "no_store": "请先选择门店", "change": "更换", "phone": "手机号", "code": "验证码", "send_code": "获取验证码",
        "code_sent": "验证码已发送，请查看短信", "signed_in_as": "已登录", "empty_cart": "购物车是空的",
        "subtotal": "商品原价", "discount": "优惠", "total": "合计", "saving": "节省", "almost": "再买一点更划算",
        "delivery_fee": "配送费", "free_delivery_from": "满 ¥{amount} 免配送费", "checkout": "去结算",
        "pickup": "到店自提", "delivery": "送货上门", "slot": "时间段", "coupons": "优惠券", "no_coupons": "暂无可用优惠券",
        "pay_with": "支付方式", "stored_value": "储值余额", "wallet_sim": "钱包支付(模拟)", "points": "积分",
        "points_use": "使用积分", "place_order": "提交订单并支付", "balance": "余额", "order": "订单",
        "status": "状态", "pickup_code": "取货码", "show_code": "到店出示此码", "timeline": "订单进度",
        "rider": "骑手", "map": "配送地图", "remove": "删除", "results": "搜索结果", "nothing_found": "没有找到商品",
        "lat": "纬度", "lon": "经度", "use_location": "使用当前位置", "address": "地址", "save": "保存",
        "wallet_pay_now": "请在钱包中完成付款", "wallet_open": "打开钱包付款", "paying": "正在支付…",
        "error_generic": "出错了，请稍后再试", "sign_in_needed": "请先登录", "all_products": "全部商品",
        "distance": "距离", "km": "公里", "open_hours": "营业时间", "chosen": "已选择", "choose": "选择",
        "ends_in": "距结束", "product_missing": "没有这个商品", "page_missing": "页面不存在", "back_home": "返回首页",
        "sold_online": "线上可售", "unit_kg": "千克", "unit_piece": "份", "per_member": "每人限购",
        "remaining": "剩余", "status_pending": "处理中", "status_rejected": "未能下单", "status_reserved": "待支付",
        "status_paid": "已支付", "status_group_forming": "拼团中", "status_picking": "拣货中", "status_ready": "已备好",
        "status_out_for_delivery": "配送中", "status_delivery_failed": "配送未成功", "status_delivered": "已送达",
        "status_picked_up": "已取货", "status_completed": "已完成", "status_partially_refunded": "部分退款",
        "status_cancelled": "已取消", "status_refunded": "已退款", "status_expired": "已过期",
        "ev_refunded_part": "退款", "ev_rider": "骑手", "ev_weight": "称重调整", "you_pay": "实付",
        "rider_position": "骑手位置", "destination": "收货地址", "refund_of": "退款 ¥{amount}",
        "near_miss": "再买 ¥{missing} 可享「{name}」", "saved_by": "{name} 省 ¥{amount}",
        "free_delivery_missing": "再买 ¥{missing} 免配送费", "rider_dispatched": "已呼叫骑手",
        "problem_out_of_stock": "库存不足",
        "problem_slot": "这个时间段约满或已截止，请换一个", "problem_no_store": "这个地址不在门店配送范围内",
        "problem_coupon": "优惠券不能使用", "problem_payment": "支付未成功", "problem_invalid": "填写有误",
        "rider_accepted": "骑手已接单", "rider_arrived_at_store": "骑手已到店", "rider_picked_up": "骑手已取货",
        "rider_delivering": "骑手配送中", "rider_delivered": "已送达", "rider_cancelled": "骑手取消", "placed": "订单已提交",
        "live": "实时更新", "no_orders": "还没有订单",
        "qty_minus": "减少", "qty_plus": "增加", "free": "免费", "close": "关闭",
    },
    "en": {
        "brand": "FreshMesh Mall", "home": "Home", "cart": "Cart", "orders": "My orders", "me": "Me",
        "sign_in": "Sign in", "sign_out": "Sign out", "search": "Search", "search_hint": "Name, PLU or pinyin initials",
        "language": "中文", "lang_label": "Change language",
        "footer": "FreshMesh · pickup in store and home delivery · prices are final at checkout",
        "shelf_vegetables": "Vegetables", "shelf_fruit": "Fruit", "shelf_meat": "Meat & poultry",
        "shelf_seafood": "Seafood", "shelf_eggs_dairy": "Eggs & dairy", "shelf_packed": "Packed",
        "categories": "Categories", "scenes": "Ideas", "promotions": "Deals", "flash_sales": "Flash sales",
        "group_buys": "Group buys", "time_limited": "Limited time", "spend_x": "Spend & save", "per_kg": "/kg",
        "per_piece": "/piece", "member_price": "Member price", "list_price": "List price", "in_stock": "In stock",
        "low_stock": "Few left", "out_of_stock": "Out of stock", "presale": "Pre-sale",
        "presale_note": "we deliver or set it aside when it arrives",
        "presale_accept": "If out of stock, take it as a pre-sale (ready when supply arrives)", "add_to_cart": "Add to cart",
        "added": "Added to the cart", "weight": "Weight", "quantity": "Quantity", "grams": "g", "store": "Store",
        "choose_store": "Choose a store", "nearest": "Find the nearest store to me", "delivery_to": "Deliver to",
        "your_store": "Your store", "no_store": "Choose a store first", "change": "Change", "phone": "Phone",
        "code": "Code", "send_code": "Send code", "code_sent": "The code is on its way by SMS",
        "signed_in_as": "Signed in", "empty_cart": "Your cart is empty", "subtotal": "Subtotal",
        "discount": "Savings", "total": "Total", "saving": "saves", "almost": "A little more saves more",
        "delivery_fee": "Delivery fee", "free_delivery_from": "free delivery from ¥{amount}", "checkout": "Checkout",
        "pickup": "Pickup in store", "delivery": "Delivery", "slot": "Time slot", "coupons": "Coupons",
        "no_coupons": "No coupons to use", "pay_with": "Pay with", "stored_value": "Stored value",
        "wallet_sim": "Wallet (simulated)", "points": "Points", "points_use": "Use points",
        "place_order": "Place order and pay", "balance": "Balance", "order": "Order", "status": "Status",
        "pickup_code": "Pickup code", "show_code": "Show this code in the store", "timeline": "Progress",
        "rider": "Rider", "map": "Delivery map", "remove": "Remove", "results": "Results",
        "nothing_found": "No products found", "lat": "Latitude", "lon": "Longitude",
        "use_location": "Use my location", "address": "Address", "save": "Save",
        "wallet_pay_now": "Finish paying in the wallet", "wallet_open": "Open the wallet to pay",
        "paying": "Paying…", "error_generic": "Something went wrong, please try again",
        "sign_in_needed": "Please sign in first", "all_products": "All products", "distance": "Distance",
        "km": "km", "open_hours": "Open", "chosen": "Chosen", "choose": "Choose", "ends_in": "Ends in",
        "product_missing": "No such product", "page_missing": "No such page", "back_home": "Back to the home page",
        "sold_online": "Sold online", "unit_kg": "kg", "unit_piece": "piece", "per_member": "limit per member",
        "remaining": "left", "status_pending": "Processing", "status_rejected": "Not placed",
        "status_reserved": "Awaiting payment", "status_paid": "Paid", "status_group_forming": "Group forming",
        "status_picking": "Being picked", "status_ready": "Ready", "status_out_for_delivery": "On its way",
        "status_delivery_failed": "Delivery failed", "status_delivered": "Delivered", "status_picked_up": "Picked up",
        "status_completed": "Completed", "status_partially_refunded": "Partly refunded",
        "status_cancelled": "Cancelled", "status_refunded": "Refunded", "status_expired": "Expired",
        "ev_refunded_part": "Refund", "ev_rider": "Rider", "ev_weight": "Weight adjusted", "you_pay": "You pay",
        "rider_position": "Rider", "destination": "Delivery address", "refund_of": "refund ¥{amount}",
        "near_miss": "Spend ¥{missing} more for “{name}”", "saved_by": "{name} saves ¥{amount}",
        "free_delivery_missing": "Spend ¥{missing} more for free delivery",
        "problem_out_of_stock": "Out of stock", "problem_slot": "That slot is full or closed: choose another",
        "problem_no_store": "No store delivers to this address", "problem_coupon": "The coupon cannot be used",
        "problem_payment": "The payment did not go through", "problem_invalid": "Something is not filled in right",
        "rider_dispatched": "rider called", "rider_accepted": "rider accepted",
        "rider_arrived_at_store": "rider at the store",
        "rider_picked_up": "rider picked up", "rider_delivering": "on the way", "rider_delivered": "delivered",
        "rider_cancelled": "rider cancelled", "placed": "Order placed",
        "live": "Live", "no_orders": "No orders yet", "qty_minus": "Less",
        "qty_plus": "More", "free": "free", "close": "Close",
    },
}
from cloud.mall.words_mall2 import WORDS as _MALL2  # noqa: E402 - flash, group-buy and member-centre pages
from cloud.mall.words_services import WORDS as _SERVICES  # noqa: E402 - local services booking (issue 21)

for _lang in LANGS:
    CATALOGUE[_lang].update(_MALL2[_lang])
    CATALOGUE[_lang].update(_SERVICES[_lang])
assert CATALOGUE["zh"].keys() == CATALOGUE["en"].keys(), "both languages name every word"


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
