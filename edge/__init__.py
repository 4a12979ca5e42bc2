"""The store edge process: StoreActor, device drivers, the SQLite shard, outbox relay, lane API."""
