"""The cloud's domain services: orders, payments, members, flash sales, stock views, world changes. They answer
with results and verdicts, never HTTP status codes."""
