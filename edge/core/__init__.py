"""The store's pure core: every business decision the StoreActor makes, as plain functions over plain data.

Guarantees (what the tests in tests/unit/test_edge_core.py hold it to):
- No I/O, no clock reads, no randomness: the shell passes in the state it loaded (stock levels of the SKUs
  involved, the member, the order, the books in use), the moment (`Moment`), ids (`sale_id`, and `new_id` inside
  the `EventStamp`) and the last event seq. The same inputs give the same Outcome.
- A decision answers with an `Outcome` (edge.core.outcome): the reply, the effects to make durable in ONE
  transaction, and after-effects (print, forget a cart, use new books) that the shell runs only after the commit;
  or it raises `Refused` (nothing happens).
- Quantities carry their unit (protocol.messages.Quantity): a line sold takes off stock exactly what left the
  shelf - pieces, or grams (a price-embedded label on a per-kg product: grams from the price, see cart.py).
- Outgoing events are numbered from `last_seq + 1` without gaps; the outcome says the highest seq it used.

Modules: cart (lines, labels, pricing), selling (pay), stock (receive, shrink, pickup), cloud_messages
(what the cloud sends), escrow (the share arithmetic), tickets (receipt and pick ticket bytes), state and outcome
(the records).
"""
