"""`freshmesh operators add | password | list`: operator accounts from the server's command line.

This is how the first hq_admin can be made on purpose (`freshmesh cloud` also makes `admin` on an empty table),
and how a lost password is reset. It talks to PostgreSQL directly (`DATABASE_URL`), applies the migrations first
so it works on a fresh database, and records what it did in the operator audit log as done from the command line.
The password is read from a prompt (twice, not echoed) or, with --password-stdin, from the first line of stdin;
it is never an argument (arguments show in `ps` and shell history).
"""
from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys

from protocol.roles import ROLES


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="operators", required=True)
    add = sub.add_parser("add", help="create an operator account")
    add.add_argument("--username", required=True)
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--store", default=None, help="the store a store_manager manages")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    password = sub.add_parser("password", help="set an operator's password (ends their sessions)")
    password.add_argument("--username", required=True)
    password.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    sub.add_parser("list", help="the operator accounts")


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise SystemExit("no terminal to ask for the password on: pipe it in with --password-stdin")
    first = getpass.getpass("password (10+ characters): ")
    if getpass.getpass("again: ") != first:
        raise SystemExit("the two passwords differ; nothing changed")
    return first


async def _stored_stores(conn) -> set[str] | None:
    """The stores of the newest stored world, or None when the cloud has not stored one yet (nothing to check)."""
    data = await conn.fetchval("select data from world_versions order by version desc limit 1")
    return None if data is None else {s["store_id"] for s in json.loads(data)["stores"]}


async def _run(args, database_url: str) -> int:
    import asyncpg

    from cloud.context import system_clock, system_ids
    from cloud.migrations import migrate
    from cloud.services.operators import Operators
    from cloud.services.verdicts import Refusal

    by = f"freshmesh operators {args.operators} (user {getpass.getuser()})"
    password = read_password(args.password_stdin) if args.operators in ("add", "password") else ""
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with db.acquire() as conn:
            await migrate(conn)
            stores = await _stored_stores(conn)
        clock = system_clock()
        operators = Operators(db, clock, system_ids(clock))
        try:
            if args.operators == "add":
                account = await operators.create(args.username, password, args.role, args.store, by_name=by,
                                                 known_stores=stores)
                print(f"created {account['username']} ({account['role']}"
                      f"{' of ' + account['store_id'] if account['store_id'] else ''})")
            elif args.operators == "password":
                await operators.set_password(args.username, password, by)
                print(f"password of {args.username} set; their sessions are signed out")
            else:
                for a in await operators.accounts():
                    print(f"{a['username']:<24} {a['role']:<14} {a['store_id'] or '-':<8} "
                          f"{'disabled' if a['disabled'] else 'active'}  since {a['created_at']}")
        except Refusal as refusal:
            print(f"freshmesh operators {args.operators}: {refusal.detail}", file=sys.stderr)
            return 1
    finally:
        await db.close()
    return 0


def run(args) -> int:
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("freshmesh operators: set DATABASE_URL to the cloud's PostgreSQL (`freshmesh stack --show-secrets` prints it)",
              file=sys.stderr)
        return 2
    return asyncio.run(_run(args, database_url))
