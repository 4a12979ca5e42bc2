"""The store edge process: StoreActor (a shell around the pure core, edge.core), device drivers, the StoreDb in
SQLite, outbox relay, lane API."""
