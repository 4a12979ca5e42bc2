"""The cloud process: actors on Ray, persistence (asyncpg), the NATS bridge, the HTTP API and console."""
