"""``sales-pipeline``: what Dagster's own CLI does not cover. Thin: parses, then calls."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time


def last_complete_days(count: int, today: dt.date | None = None) -> list[dt.date]:
    """The ``count`` most recent complete UTC days, oldest first."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return [today - dt.timedelta(days=offset) for offset in range(count, 0, -1)]


def _cmd_demo(args: argparse.Namespace) -> int:
    from sales_assets.resources.etl import JavaMissingError, require_java

    try:
        require_java()
    except JavaMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    from sales_assets.operations.demo import run_demo

    days = last_complete_days(args.days)
    summary = run_demo(days)
    print(summary.render())
    return 0 if summary.success else 1


def _cmd_serve_source(args: argparse.Namespace) -> int:
    from sales_assets.source.demo_data import DemoDataConfig
    from sales_assets.source.demo_server import DemoSourceServer

    server = DemoSourceServer(
        host=args.host, port=args.port, token=args.token, config=DemoDataConfig(orders_per_day=args.orders_per_day)
    )
    server.start()
    print(f"Sales Source API demo serving at {server.url}")
    print(f"export SALES_SOURCE_URL={server.url} SALES_SOURCE_TOKEN=<the token you passed with --token>")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sales-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="materialize the most recent complete days end to end, locally")
    demo.add_argument("--days", type=int, default=3, help="how many complete days (default 3)")
    demo.set_defaults(func=_cmd_demo)

    serve = commands.add_parser("serve-source", help="run the bundled demo Sales Source API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765)
    serve.add_argument("--token", default="demo-token")
    serve.add_argument("--orders-per-day", type=int, default=400)
    serve.set_defaults(func=_cmd_serve_source)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
