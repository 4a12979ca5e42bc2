"""Pricing and the promotion book: one evaluator that the till and the mall both run.

`price_basket` is the compiled evaluator (fast_evaluator.py); `price_basket_reference` the plain one it is held equal
to (evaluator.py)."""
from protocol.pricing.catalogue import Catalogue, LevelPrice, Product
from protocol.pricing.evaluator import BasketLine, BudgetLeft, PricedBasket, PricingContext, price_basket_reference
from protocol.pricing.fast_evaluator import price_basket
from protocol.pricing.rules import RuleBook, load_rule_book

__all__ = ["Catalogue", "LevelPrice", "Product", "BasketLine", "BudgetLeft", "PricedBasket", "PricingContext",
           "price_basket", "price_basket_reference", "RuleBook", "load_rule_book"]
