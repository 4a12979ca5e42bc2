"""The HQ back office: server-rendered pages at /office for operators (catalogue and prices, promotions, stock
policy, stores, reports, stalls, services), signed in with the operator accounts and roles of the console."""
