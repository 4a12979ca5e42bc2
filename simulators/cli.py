"""`freshmesh`: one console script for every part (`demo | cloud | operators | edge | stores | sim | load | stack`).

It lives in simulators/ because that room may import every other one; each subcommand imports its part lazily
so that `freshmesh stack` does not pay for Ray.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading


def _stack_from_env(args):
    from cloud.embedded import EmbeddedStack
    return EmbeddedStack(workdir=args.workdir, nats="NATS_URL" not in os.environ,
                         postgres="DATABASE_URL" not in os.environ)


def _urls(stack) -> tuple[str, str, str]:
    nats_url = os.environ.get("NATS_URL") or stack.nats_url
    address = os.environ.get("NATS_URL") or stack.nats_address
    return nats_url, address, os.environ.get("DATABASE_URL") or stack.database_url


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


def cmd_stack(args) -> int:
    from pathlib import Path

    from cloud.embedded import redacted
    from cloud.embedded.check import run_check
    from cloud.store_credentials import CredentialBook

    stack = _stack_from_env(args)
    with stack:
        nats_url, address, database_url = _urls(stack)
        shown = (lambda text: text) if args.show_secrets else redacted
        print(f"NATS_URL={shown(nats_url)}")
        print(f"DATABASE_URL={shown(database_url)}")
        if stack.postgres:
            print(f"# PostgreSQL from the {stack.postgres.origin}")
        book = CredentialBook(Path(os.environ.get("FRESHMESH_STORE_CREDENTIALS") or stack.credentials.path))
        print(f"FRESHMESH_STORE_CREDENTIALS={book.path}")  # a path: each store's own password is in that file
        if not args.show_secrets:
            print(f"# passwords are hidden; --show-secrets prints the URLs with theirs (the servers' own files and the "
                  f"stores' credential book under {stack.workdir} are readable only by their owner)")
        sys.stdout.flush()
        if args.check:
            report = asyncio.run(run_check(nats_url, address, database_url, lambda sid: book.password(sid) or ""))
            for line in report:
                print(f"ok  {line}")
            print("stack check passed; stopping")
            return 0
        print("# stack running; Ctrl-C stops it", flush=True)
        _wait_for_signal()
    print("stack stopped")
    return 0


def cmd_demo(args) -> int:
    from simulators.demo import run
    return run(args)


def cmd_cloud(args) -> int:
    from cloud.main import run
    return run(args)


def cmd_operators(args) -> int:
    from cloud.operators_cli import run
    return run(args)


def cmd_edge(args) -> int:
    from edge.main import run
    return run(args)


def cmd_sim_fleet(args) -> int:
    from simulators.demo import run
    return run(args, till_rate=args.rate, online_rate=args.online_rate, flash=False)


def cmd_sim_devices(args) -> int:
    from simulators.sim_devices import run
    return run(args)


def cmd_sim_sms(args) -> int:
    from simulators.sms_provider import run
    if not args.key or not args.secret:
        print("freshmesh sim sms: give --key and --secret (or FRESHMESH_SMS_KEY / FRESHMESH_SMS_SECRET)",
              file=sys.stderr)
        return 2
    delay = {} if args.delay_ms is None else {"delay_ms": args.delay_ms}
    try:
        return run(args.port, args.key, args.secret, callback_url=args.callback_url, fail_rate=args.fail_rate,
                   duplicate_rate=args.duplicate_rate, seed=args.seed, **delay)
    except ValueError as exc:  # a setting out of range (checked before anything starts)
        print(f"freshmesh sim sms: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the port is taken
        print(f"freshmesh sim sms: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1


def cmd_sim_pay(args) -> int:
    from simulators.pay_provider import Settings, run
    private, api_key = os.environ.get("FRESHMESH_SIM_PAY_PRIVATE_KEY"), os.environ.get("FRESHMESH_SIM_PAY_API_KEY")
    if not args.merchant_public_key or not private or not api_key:
        print("freshmesh sim pay: give --merchant-public-key, the provider's private key in "
              "FRESHMESH_SIM_PAY_PRIVATE_KEY and the merchant's APIv3 key in FRESHMESH_SIM_PAY_API_KEY (base64 of 32 "
              "bytes each)", file=sys.stderr)
        return 2
    try:
        settings = Settings(args.mchid, args.merchant_public_key, private, api_key,
                            notify_delay_ms=args.notify_delay_ms,
                            auto_pay_ms=args.auto_pay_ms, fail_rate=args.fail_rate,
                            duplicate_rate=args.duplicate_rate, drop_rate=args.drop_rate, seed=args.seed)
        return run(settings, args.port)
    except ValueError as exc:
        print(f"freshmesh sim pay: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"freshmesh sim pay: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1


def cmd_sim_riders(args) -> int:
    from simulators.rider_platform import Settings, run
    if not args.app_key or not args.app_secret:
        print("freshmesh sim riders: give --app-key and --app-secret (or FRESHMESH_RIDERS_APP_KEY / "
              "FRESHMESH_RIDERS_APP_SECRET)", file=sys.stderr)
        return 2
    try:
        settings = Settings(args.app_key, args.app_secret, accept_delay_ms=args.accept_delay_ms, step_ms=args.step_ms,
                            fail_rate=args.fail_rate, no_rider_rate=args.no_rider_rate,
                            rider_cancel_rate=args.rider_cancel_rate, duplicate_rate=args.duplicate_rate,
                            out_of_order_rate=args.out_of_order_rate, seed=args.seed)
        return run(settings, args.port)
    except ValueError as exc:
        print(f"freshmesh sim riders: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"freshmesh sim riders: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1


def cmd_sim_marketplace(args) -> int:
    from simulators.marketplace import Settings, run
    if not args.app_key or not args.app_secret or not args.callback_url:
        print("freshmesh sim marketplace: give --app-key, --app-secret and --callback-url (or "
              "FRESHMESH_MARKETPLACE_APP_KEY / _APP_SECRET / _CALLBACK_URL)", file=sys.stderr)
        return 2
    try:
        settings = Settings(args.app_key, args.app_secret, args.callback_url, delay_ms=args.delay_ms,
                            rider_delay_ms=args.rider_delay_ms, step_ms=args.step_ms,
                            confirm_timeout_ms=args.confirm_timeout_ms, fail_rate=args.fail_rate,
                            duplicate_rate=args.duplicate_rate, seed=args.seed)
        return run(settings, args.port)
    except ValueError as exc:
        print(f"freshmesh sim marketplace: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"freshmesh sim marketplace: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 1


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a probability between 0 and 1, got {text}")
    return value


def cmd_pii_rotate(args) -> int:
    """Re-seal every member's phone under the first key of FRESHMESH_PII_KEYS (or the master's derived key) and
    recompute its lookup hash under FRESHMESH_SECRET_KEY; prints counts (never a phone or a key)."""
    import json

    from cloud.keys import KeyConfigError, KeyRing
    from cloud.services.pii import Unsealable, rotate_database
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("freshmesh pii rotate: set DATABASE_URL (and the keys: FRESHMESH_SECRET_KEY, FRESHMESH_PII_KEYS)",
              file=sys.stderr)
        return 2
    try:
        keys = KeyRing.from_env()
        print(json.dumps(asyncio.run(rotate_database(database_url, keys))))
    except KeyConfigError as exc:
        print(f"freshmesh pii rotate: {exc}", file=sys.stderr)
        return 2
    except Unsealable as exc:  # a row sealed under a key this ring lacks: keep the old key listed and run again
        print(f"freshmesh pii rotate: stopped: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_stores_credentials(args) -> int:
    """Provision one store's NATS credentials (a random password, kept in the stores' credential book) if it has
    none, and write its box's configuration (owner-only) to --out: `freshmesh edge --config FILE` then connects as
    that store. Prints paths, never the password."""
    from pathlib import Path

    from cloud.store_credentials import BOOK_NAME, CredentialBook, write_box_config
    from protocol.messages import valid_store_id
    if not valid_store_id(args.store):
        print(f"freshmesh stores credentials: invalid store id {args.store!r}", file=sys.stderr)
        return 2
    path = args.book or os.environ.get("FRESHMESH_STORE_CREDENTIALS") or (
        str(Path(args.workdir) / BOOK_NAME) if args.workdir else "")
    if not path:
        print("freshmesh stores credentials: give --book FILE (or FRESHMESH_STORE_CREDENTIALS, or the cloud's "
              "--workdir)", file=sys.stderr)
        return 2
    book = CredentialBook(Path(path))
    if args.rotate:
        book.rotate(args.store)
        print(f"store {args.store}: new password; reload the NATS configuration (or restart the cloud) before its box "
              f"uses it")
    elif book.provision([args.store]):
        print(f"store {args.store}: provisioned (its NATS user exists once the NATS configuration is reloaded)")
    out = Path(args.out or f"{args.store}.box.json")
    write_box_config(book.box_config(args.store, args.nats_url or ""), out)
    print(f"store {args.store}: box configuration written to {out} (owner-only; it holds the store's password)")
    return 0


def cmd_deploy(args) -> int:
    from cloud.deploy.cli import run
    return run(args)


def cmd_load(args) -> int:
    from loadtest import run_load
    return run_load(args)


def build_parser() -> argparse.ArgumentParser:
    from cloud.cli_help import add_version, document
    parser = argparse.ArgumentParser(prog="freshmesh", description=__doc__.splitlines()[0])
    add_version(parser)
    sub = parser.add_subparsers(dest="command", required=True)

    stack = sub.add_parser("stack", help="embedded NATS (JetStream) + PostgreSQL; prints NATS_URL and DATABASE_URL")
    stack.add_argument("--check", action="store_true", help="round-trip both servers, show the permission refusal, exit")
    stack.add_argument("--workdir", default=None, help="keep data here (default: a temporary dir removed at stop)")
    stack.add_argument("--show-secrets", action="store_true",
                       help="print the URLs with their passwords (hidden by default)")
    stack.set_defaults(func=cmd_stack)

    demo = sub.add_parser("demo", help="everything on one box")
    demo.add_argument("--stores", type=int, default=5, help="store boxes to run")
    demo.add_argument("--duration", type=float, default=None, help="seconds, then stop (default: until Ctrl-C)")
    demo.add_argument("--json", default=None, help="write the summary here")
    demo.set_defaults(func=cmd_demo)

    from cloud.main import add_arguments as cloud_arguments
    cloud = sub.add_parser("cloud", help="the cloud: HTTP API, NATS bridge, Ray actors (embedded servers when unset)")
    cloud_arguments(cloud)
    cloud.set_defaults(func=cmd_cloud)

    from cloud.operators_cli import add_arguments as operators_arguments
    operators = sub.add_parser("operators", help="operator accounts (needs DATABASE_URL): add, password, list")
    operators_arguments(operators)
    operators.set_defaults(func=cmd_operators)

    from edge.main import add_arguments as edge_arguments
    edge = sub.add_parser("edge", help="one store's edge box: its database, devices, sync, lane API")
    edge_arguments(edge)
    edge.set_defaults(func=cmd_edge)

    sim = sub.add_parser("sim", help="simulators: serial devices on pseudo-terminals, a fleet of stores with shoppers, "
                                     "a simulated SMS provider")
    sim_sub = sim.add_subparsers(dest="sim", required=True)
    devices = sim_sub.add_parser("devices",
                                 help="a scale, scanner and receipt printer on pseudo-terminals, driven from stdin")
    from simulators.sim_devices import add_arguments
    add_arguments(devices)
    devices.set_defaults(func=cmd_sim_devices)
    fleet = sim_sub.add_parser("fleet", help="embedded servers, the cloud and N stores with devices and shoppers")
    fleet.add_argument("--stores", type=int, default=5, help="store boxes to run")
    fleet.add_argument("--seed", type=int, default=7, help="the world and the shoppers' choices")
    fleet.add_argument("--rate", type=float, default=1.0, help="till baskets per second per store")
    fleet.add_argument("--online-rate", type=float, default=0.5, help="online orders per second, chain-wide")
    fleet.add_argument("--devices", action=argparse.BooleanOptionalAction, default=None,
                       help="serial scale, scanner and printer per store (default: on up to 20 stores)")
    fleet.add_argument("--per-process", type=int, default=25, help="edge boxes per edge process")
    fleet.add_argument("--duration", type=float, default=None, help="seconds, then stop (default: until Ctrl-C)")
    fleet.add_argument("--json", default=None, help="write the summary here")
    fleet.set_defaults(func=cmd_sim_fleet)
    sms = sim_sub.add_parser("sms", help="a SIMULATED SMS provider as its own HTTP service (signed API, receipts)")
    sms.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default 0: a free port, printed)")
    sms.add_argument("--key", default=os.environ.get("FRESHMESH_SMS_KEY"),
                     help="the account key clients send as X-Sms-Key (default: $FRESHMESH_SMS_KEY)")
    sms.add_argument("--secret", default=os.environ.get("FRESHMESH_SMS_SECRET"),
                     help="signs requests and receipts (default: $FRESHMESH_SMS_SECRET)")
    sms.add_argument("--callback-url", default=None, help="where signed delivery receipts are POSTed")
    sms.add_argument("--fail-rate", type=_rate, default=0.0, help="share of sends answered 503 (nothing kept)")
    sms.add_argument("--delay-ms", type=int, default=None,
                     help="from accepted to delivered and the receipt (default 200)")
    sms.add_argument("--duplicate-rate", type=_rate, default=0.0, help="share of receipts pushed twice")
    sms.add_argument("--seed", type=int, default=None, help="makes the failures and duplicates reproducible")
    sms.set_defaults(func=cmd_sim_sms)
    riders = sim_sub.add_parser("riders", help="a SIMULATED rider platform as its own HTTP service (signed API and "
                                               "callbacks, delays, no rider / rider cancels)")
    riders.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default 0: a free port, printed)")
    riders.add_argument("--app-key", default=os.environ.get("FRESHMESH_RIDERS_APP_KEY"),
                        help="the app key clients must send (default: $FRESHMESH_RIDERS_APP_KEY)")
    riders.add_argument("--app-secret", default=os.environ.get("FRESHMESH_RIDERS_APP_SECRET"),
                        help="signs requests and callbacks (default: $FRESHMESH_RIDERS_APP_SECRET)")
    riders.add_argument("--accept-delay-ms", type=int, default=1000, help="from created to a rider's answer")
    riders.add_argument("--step-ms", type=int, default=1000, help="between a rider's callbacks")
    riders.add_argument("--fail-rate", type=_rate, default=0.0, help="share of API calls answered 503")
    riders.add_argument("--no-rider-rate", type=_rate, default=0.0, help="share of deliveries nobody accepts")
    riders.add_argument("--rider-cancel-rate", type=_rate, default=0.0, help="share cancelled by their rider")
    riders.add_argument("--duplicate-rate", type=_rate, default=0.0, help="share of deliveries whose callbacks come twice")
    riders.add_argument("--out-of-order-rate", type=_rate, default=0.0, help="share with a late, earlier callback")
    riders.add_argument("--seed", type=int, default=None, help="makes the random outcomes reproducible")
    riders.set_defaults(func=cmd_sim_riders)
    market = sim_sub.add_parser("marketplace", help="a SIMULATED third-party marketplace as its own HTTP service "
                                                    "(signed API and webhooks, its own order ids, cancellations, "
                                                    "refunds, duplicates)")
    market.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default 0: a free port, printed)")
    market.add_argument("--app-key", default=os.environ.get("FRESHMESH_MARKETPLACE_APP_KEY"),
                        help="the app key clients must send (default: $FRESHMESH_MARKETPLACE_APP_KEY)")
    market.add_argument("--app-secret", default=os.environ.get("FRESHMESH_MARKETPLACE_APP_SECRET"),
                        help="signs requests and webhooks (default: $FRESHMESH_MARKETPLACE_APP_SECRET)")
    market.add_argument("--callback-url", default=os.environ.get("FRESHMESH_MARKETPLACE_CALLBACK_URL"),
                        help="the merchant's webhook URL (default: $FRESHMESH_MARKETPLACE_CALLBACK_URL)")
    market.add_argument("--delay-ms", type=int, default=0, help="before a webhook is first pushed")
    market.add_argument("--rider-delay-ms", type=int, default=1000, help="from packed to collected by its rider")
    market.add_argument("--step-ms", type=int, default=1000, help="from collected to delivered")
    market.add_argument("--confirm-timeout-ms", type=int, default=300_000,
                        help="an order the merchant has not confirmed by then is cancelled")
    market.add_argument("--fail-rate", type=_rate, default=0.0, help="share of API calls answered 503")
    market.add_argument("--duplicate-rate", type=_rate, default=0.0, help="share of webhooks pushed twice")
    market.add_argument("--seed", type=int, default=None, help="makes the failures and duplicates reproducible")
    market.set_defaults(func=cmd_sim_marketplace)
    pay = sim_sub.add_parser("pay", help="a SIMULATED wallet payment provider as its own HTTP service (signed API "
                                         "and notifications, query, refunds)")
    pay.add_argument("--port", type=int, default=0, help="on 127.0.0.1 (default 0: a free port, printed)")
    pay.add_argument("--mchid", default="freshmesh", help="the merchant id it serves")
    pay.add_argument("--merchant-public-key", default=os.environ.get("FRESHMESH_SIM_PAY_MERCHANT_PUBLIC_KEY"),
                     help="verifies the merchant's requests (base64 Ed25519)")
    pay.add_argument("--auto-pay-ms", type=int, default=None, help="every payment pays itself after this long "
                                                                   "(default: only when POST /sim/pay/{prepay_id})")
    pay.add_argument("--notify-delay-ms", type=int, default=100, help="from paid to its notification")
    pay.add_argument("--fail-rate", type=_rate, default=0.0, help="share of API calls answered 503")
    pay.add_argument("--duplicate-rate", type=_rate, default=0.0, help="share of notifications sent twice")
    pay.add_argument("--drop-rate", type=_rate, default=0.0, help="share of notifications never sent")
    pay.add_argument("--seed", type=int, default=None, help="makes the random outcomes reproducible")
    pay.set_defaults(func=cmd_sim_pay)

    stores = sub.add_parser("stores", help="store boxes: their own NATS credentials")
    stores_sub = stores.add_subparsers(dest="stores", required=True)
    creds = stores_sub.add_parser("credentials", help="provision a store's random NATS password (once) and write "
                                                      "its box configuration for `freshmesh edge --config`")
    creds.add_argument("store")
    creds.add_argument("--book", default=None, help="the stores' credential book (default: "
                                                    "FRESHMESH_STORE_CREDENTIALS, or the one under --workdir)")
    creds.add_argument("--workdir", default=None, help="the embedded cloud's --workdir (its book is there)")
    creds.add_argument("--out", default=None, help="the box configuration to write (default: STORE.box.json)")
    creds.add_argument("--nats-url", default=None, help="the NATS address the box connects to, written with it")
    creds.add_argument("--rotate", action="store_true", help="give the store a new password")
    creds.set_defaults(func=cmd_stores_credentials)

    pii = sub.add_parser("pii", help="personal data: re-seal members' phones under the current keys")
    pii_sub = pii.add_subparsers(dest="pii", required=True)
    rotate = pii_sub.add_parser("rotate", help="re-seal every phone under the first encryption key and re-hash it "
                                               "under the current master (DATABASE_URL, FRESHMESH_SECRET_KEY, "
                                               "FRESHMESH_PII_KEYS from the environment)")
    rotate.set_defaults(func=cmd_pii_rotate)

    from cloud.deploy.cli import add_arguments as deploy_arguments
    deploy = sub.add_parser("deploy", help="deployment material made from code: the chain's NATS configuration")
    deploy_arguments(deploy)
    deploy.set_defaults(func=cmd_deploy)

    from loadtest import add_load_parser
    add_load_parser(sub, cmd_load)
    document(parser)  # every option's default and each command's environment in its --help (cloud/cli_help.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "load":  # SIGTERM unwinds like Ctrl-C, so the servers a load run started are stopped
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
