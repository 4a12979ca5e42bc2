"""Traffic generators that measure and print JSON reports (`freshmesh load ...`)."""
from __future__ import annotations

import importlib
import json
import sys

SUITES = {
    "pricing": ("loadtest.pricing", "price 30-line baskets against a 200-rule book"),
    "actors": ("loadtest.actors", "durable reservations and transfers through Ray; routing among 5,000 stores"),
    "flashsale": ("loadtest.flashsale", "open-loop HTTP load on one flash sale; oversold must be 0"),
    "catchup": ("loadtest.catchup", "a store's offline backlog drained to the cloud: events/s and edge RSS"),
    "consistency": ("loadtest.consistency", "edge sale -> visible in the cloud's stock view, under steady till traffic"),
    "fleet": ("loadtest.fleet", "how many stores one box carries with till-to-cloud lag p99 under 1 s"),
    "till-page": ("loadtest.till_page", "scan -> line on the till page's scan endpoint, over HTTP: p99 in ms"),
    "mall-pages": ("loadtest.mall_pages", "hundreds of browsers on the mall's home and product pages: p50/p99 in ms"),
    "scaleout": ("loadtest.scaleout", "the bridge and the actors on 1, then 2, CPU-capped instances: scaling"),
    "reports": ("loadtest.reports", "HQ reports over a generated year of a chain (--stores, --days): report_ms"),
}
PLANNED: dict[str, str] = {}


def add_load_parser(sub, func) -> None:
    load = sub.add_parser("load", help="load suite: " + ", ".join([*SUITES, *PLANNED]))
    load.add_argument("suite", choices=[*SUITES, *PLANNED])
    load.add_argument("--json", default=None, help="write the JSON report to this file")
    load.add_argument("--seconds", type=float, default=5.0, help="how long to measure")
    load.add_argument("--seed", type=int, default=7)
    load.add_argument("--url", default=None, help="flashsale: the cloud API (default: start one)")
    load.add_argument("--admin-user", default="admin", help="flashsale with --url: an hq_admin who opens the sale")
    load.add_argument("--admin-password", default=None,
                      help="flashsale with --url: their password (default: $FRESHMESH_ADMIN_PASSWORD)")
    load.add_argument("--rate", type=float, default=2000, help="flashsale: attempts per second (open loop)")
    load.add_argument("--duration", type=float, default=10, help="flashsale, consistency, fleet (per step): seconds of load")
    load.add_argument("--quantity", type=int, default=5000, help="flashsale: units on sale")
    load.add_argument("--members", type=int, default=5_000,
                      help="flashsale: distinct members, each signed in by SMS code before the sale")
    load.add_argument("--sms-url", default=None, help="flashsale with --url: the simulated SMS provider")
    load.add_argument("--sms-key", default=None, help="flashsale with --url: its account key")
    load.add_argument("--workers", type=int, default=2, help="flashsale: API worker processes when starting one")
    load.add_argument("--sale-only", action="store_true",
                      help="flashsale: a sale whose units no store holds (as before sales took stores' escrow); "
                           "always so with --url")
    load.add_argument("--sales", type=int, default=5000, help="catchup: offline sales in the backlog; scaleout: per store")
    load.add_argument("--instance-cpu", type=float, default=0.3,
                      help="scaleout: each instance's CPU cap, in cores (a cgroup; needs root)")
    load.add_argument("--part", choices=("both", "actors", "bridge"), default="both", help="scaleout: what to measure")
    load.add_argument("--stores", type=int, default=50, help="consistency: edge boxes selling")
    load.add_argument("--store-rate", type=float, default=None,
                      help="consistency, fleet: baskets per second per store "
                           "(default 1.0; fleet 0.2, a busy store's 720 an hour)")
    load.add_argument("--probe-every", type=float, default=5.0,
                      help="consistency, fleet: seconds between a store's probe sales")
    load.add_argument("--per-process", type=int, default=25, help="consistency, fleet: edge boxes per process")
    load.add_argument("--browsers", type=int, default=300, help="mall-pages: simulated browsers at once")
    load.add_argument("--days", type=int, default=365, help="reports: days of history generated")
    load.add_argument("--tickets", type=int, default=12, help="reports: tickets per store and day generated")
    load.add_argument("--data-dir", default=None, help="reports: where the generated database is kept (reused)")
    load.add_argument("--fresh", action="store_true", help="reports: generate the history again")
    load.add_argument("--steps", default="25,50,100,150,200,250,300", help="fleet: store counts to try, in order")
    load.set_defaults(func=func)


def run_load(args) -> int:
    if args.suite in PLANNED:
        print(f"freshmesh load {args.suite}: not built yet ({PLANNED[args.suite]})", file=sys.stderr)
        return 2
    module = importlib.import_module(SUITES[args.suite][0])
    if hasattr(module, "run_from_args"):
        report = module.run_from_args(args)
    else:
        report = module.run(seconds=args.seconds, seed=args.seed)
    text = json.dumps(report, indent=2, sort_keys=True)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")
    return 0
