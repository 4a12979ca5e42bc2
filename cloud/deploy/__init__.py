"""Deployment material made from code: `freshmesh deploy …` (the chain's NATS configuration)."""
