"""Where the pure actors run: durable hosts (journal + snapshots in PostgreSQL), Ray hosting, the shard map and
the typed clients. Nothing outside this package names a Ray API."""
