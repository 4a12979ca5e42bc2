"""Pricing and the promotion book: one pure evaluator that the till and the mall both run."""
from protocol.pricing.catalogue import Catalogue, LevelPrice, Product
from protocol.pricing.evaluator import BasketLine, BudgetLeft, PricedBasket, PricingContext, price_basket
from protocol.pricing.rules import RuleBook, load_rule_book

__all__ = ["Catalogue", "LevelPrice", "Product", "BasketLine", "BudgetLeft", "PricedBasket", "PricingContext",
           "price_basket", "RuleBook", "load_rule_book"]
