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


def fault_plan_from_args(args: argparse.Namespace):
    """The demo source's FaultPlan from serve-source's flags, or None when none is given."""
    from sales_assets.source.demo_server import FaultPlan, parse_fault_list

    plan = FaultPlan(
        fail_first=parse_fault_list(args.fail_first or ""),
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        repeat_cursor_on_page=args.repeat_cursor_on_page,
        schema_variants=args.schema_variants,
        resend_orders=args.resend_orders,
        late_correction=args.late_correction,
    )
    return plan if (plan.fail_first or plan.changes_data or plan.repeat_cursor_on_page) else None


def _cmd_serve_source(args: argparse.Namespace) -> int:
    from sales_assets.source.demo_data import DemoDataConfig
    from sales_assets.source.demo_server import DemoSourceServer

    try:
        fault_plan = fault_plan_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = DemoSourceServer(
        host=args.host, port=args.port, token=args.token, config=DemoDataConfig(orders_per_day=args.orders_per_day),
        fault_plan=fault_plan,
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


def _cmd_package_lambda(args: argparse.Namespace) -> int:
    from sales_assets.ingest.packaging import build_lambda_zip

    package = build_lambda_zip(args.out, vendor=not args.no_vendor)
    print(f"{package.path} ({package.size} bytes, {len(package.entries)} files)")
    print(f"handler: {package.handler}  runtime: python3.11 or python3.12 (boto3 from the runtime)")
    return 0


def _cmd_bi_grants(args: argparse.Namespace) -> int:
    from sales_assets.reporting.grants import GrantError, apply_bi_grants, bi_grant_statements, render

    user = None if args.no_user else args.user
    try:
        statements = bi_grant_statements(args.group, user)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.data_api_workgroup or args.data_api_cluster:
        from sales_assets.resources.warehouse import RedshiftDataApiResource

        target: object = RedshiftDataApiResource(
            workgroup=args.data_api_workgroup, cluster_identifier=args.data_api_cluster,
            database=args.database, db_user=args.db_user, secret_arn=args.secret_arn, region=args.region,
        )
        how = "through the Redshift Data API"
    elif args.apply:
        from sales_assets.resources import build_resources
        from sales_assets.settings import SettingsError, load_settings

        try:
            settings = load_settings()
        except SettingsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if settings.env != "aws":
            print("error: --apply needs SALES_PIPELINE_ENV=aws (the local DuckDB warehouse has no users)", file=sys.stderr)
            return 2
        # A connection's BEGIN/COMMIT, or one Data API batch (SALES_AWS_REDSHIFT_ACCESS=data_api).
        target = build_resources(settings)["warehouse"]
        how = "to Redshift"
    else:
        print(render(statements), end="")
        return 0
    try:
        # Prints what is applied: the CREATEs of a group or user that exists are left out.
        steps = apply_bi_grants(target, args.group, user, show=lambda s: print(render([x.sql for x in s]), end=""))
    except GrantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"-- applied {how} ({len(steps)} statements, one transaction)", file=sys.stderr)
    return 0


def _cmd_powerbi(args: argparse.Namespace) -> int:
    from sales_assets.reporting.powerbi import EndpointError, configured_endpoint, write_powerbi_files
    from sales_assets.settings import SettingsError, load_settings

    host, port, database = args.host, args.port, args.database
    try:
        if not (host and port and database):  # with all three flags no setting is read
            settings = load_settings()
            found = configured_endpoint(settings) if not host else (host, settings.aws_redshift_port)
            host, port, database = found[0], port or found[1], database or settings.aws_redshift_database
        paths = write_powerbi_files(args.out, host, port, database)
    except (SettingsError, EndpointError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from sales_assets.bench.harness import render_markdown, run_backfill_compare, run_bench, target_line

    if args.backfill_compare:
        report = run_backfill_compare(args.orders, args.days, out=args.out, work_dir=args.work_dir, keep=args.keep)
    else:
        report = run_bench(args.orders, args.days, out=args.out, work_dir=args.work_dir, keep=args.keep,
                           empty_day=args.empty_day)
    print(render_markdown(report))
    print(f"results: {report['files']['json']} and {report['files']['markdown']}")
    return 0 if all(row["ok"] for row in report["stages"].values()) else 1


def _cmd_export_stepfunctions(args: argparse.Namespace) -> int:
    from sales_assets.definitions import defs
    from sales_assets.deploy.export import export

    result = export(defs, args.out)
    print(result.asl_path)
    print(result.template_path)
    print("steps: " + " -> ".join(result.steps))
    if result.skipped:
        print("not exported (no aws/integration metadata): " + ", ".join(result.skipped))
    return 0


def _cmd_deploy_stepfunctions(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import boto3

    from sales_assets.deploy.deploy import deploy_state_machine

    if args.asl:
        definition = json.loads(Path(args.asl).read_text())
    else:
        from sales_assets.definitions import defs
        from sales_assets.deploy import asl

        definition = asl.build_state_machine(asl.pipeline_steps(defs))
    substitutions = {}
    for item in args.sub or []:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"error: --sub wants NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        substitutions[name] = value
    client = boto3.client("stepfunctions", region_name=args.region)
    try:
        arn, created = deploy_state_machine(client, args.name, definition, args.role_arn, substitutions)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{'created' if created else 'updated'} {arn}")
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
    faults = serve.add_argument_group("fault plan (deterministic misbehaviour, see demo_server.FaultPlan)")
    faults.add_argument("--fail-first", metavar="FAULTS",
                        help="comma list for the first /v1/orders requests: HTTP statuses (429,503,...) "
                             "or slow, truncated, invalid_json, disconnect")
    faults.add_argument("--retry-after", metavar="VALUE",
                        help='Retry-After sent with 429/503: seconds, an HTTP-date, or "http-date+N"')
    faults.add_argument("--slow-seconds", type=float, default=2.0, help="delay of a 'slow' answer (default 2)")
    faults.add_argument("--repeat-cursor-on-page", type=int, metavar="N", help="page N answers with its own cursor")
    faults.add_argument("--schema-variants", action="store_true",
                        help="extra field, quantity as a string, missing product_id in the first orders")
    faults.add_argument("--resend-orders", type=int, default=0, metavar="N",
                        help="re-send the first N orders with a later updated_at")
    faults.add_argument("--late-correction", action="store_true",
                        help="from a day's second listing on, correct one of its orders")
    serve.set_defaults(func=_cmd_serve_source)

    package = commands.add_parser("package-lambda", help="build the ingest Lambda's deployment zip")
    package.add_argument("--out", default="dist", help="output folder (default ./dist)")
    package.add_argument("--no-vendor", action="store_true",
                         help="leave requests out (provide it with a Lambda layer instead)")
    package.set_defaults(func=_cmd_package_lambda)

    grants = commands.add_parser("bi-grants", help="print (or apply) the SQL of a read-only BI group on `reporting`")
    grants.add_argument("--group", default="bi_readers")
    grants.add_argument("--user", default="powerbi", help="BI user created in the group (password disabled)")
    grants.add_argument("--no-user", action="store_true", help="create the group only")
    grants.add_argument("--apply", action="store_true", help="run it on the aws warehouse (SALES_PIPELINE_ENV=aws) as one transaction; "
                        "safe to re-run (what exists is not created again)")
    via = grants.add_argument_group("apply through the Redshift Data API instead of a connection")
    via.add_argument("--data-api-workgroup", help="Redshift Serverless workgroup")
    via.add_argument("--data-api-cluster", help="provisioned cluster identifier")
    via.add_argument("--database", default="dev")
    via.add_argument("--db-user", help="database user (provisioned, IAM auth)")
    via.add_argument("--secret-arn", help="Secrets Manager secret with the credentials")
    via.add_argument("--region", default="us-east-1")
    grants.set_defaults(func=_cmd_bi_grants)

    powerbi = commands.add_parser("powerbi", help="write the .pbids and Power Query M files for a Redshift endpoint")
    powerbi.add_argument("--host", help="Redshift endpoint host (default: SALES_AWS_REDSHIFT_HOST, else the endpoint "
                         "of SALES_AWS_REDSHIFT_WORKGROUP / SALES_AWS_REDSHIFT_CLUSTER_IDENTIFIER, asked of AWS)")
    powerbi.add_argument("--port", type=int, help="default: SALES_AWS_REDSHIFT_PORT or the looked-up endpoint's (5439)")
    powerbi.add_argument("--database", help="default: SALES_AWS_REDSHIFT_DATABASE (dev)")
    powerbi.add_argument("--out", default="powerbi", help="output folder (default ./powerbi)")
    powerbi.set_defaults(func=_cmd_powerbi)

    bench = commands.add_parser("bench", help="time every stage at scale beside a DuckDB baseline and the JSON parse limit")
    bench.add_argument("--orders", type=int, required=True, help="orders per day from the demo source")
    bench.add_argument("--days", type=int, default=1, help="days benchmarked as one range (default 1)")
    bench.add_argument("--out", default="bench/results", help="results folder (default ./bench/results)")
    bench.add_argument("--work-dir", help="where lakes and warehouses are written (default: a temp folder, removed)")
    bench.add_argument("--keep", action="store_true", help="keep the temp work folder")
    bench.add_argument("--empty-day", action="store_true", help="also time the job on a day with no orders")
    bench.add_argument("--backfill-compare", action="store_true",
                       help="instead: the job end to end over --days days of --orders as one run vs one day of "
                            "orders x days (the backfill target: --orders 10000 --days 30)")
    bench.set_defaults(func=_cmd_bench)

    sfn = commands.add_parser("export-stepfunctions", help="write the Step Functions state machine and CloudFormation template")
    sfn.add_argument("--out", default="dist/stepfunctions", help="output folder (default ./dist/stepfunctions)")
    sfn.set_defaults(func=_cmd_export_stepfunctions)

    deploy = commands.add_parser("deploy-stepfunctions", help="create or update the state machine with boto3")
    deploy.add_argument("--name", default="sales-pipeline")
    deploy.add_argument("--role-arn", required=True, help="role Step Functions assumes")
    deploy.add_argument("--asl", help="state_machine.asl.json to deploy (default: export the code location now)")
    deploy.add_argument("--sub", action="append", metavar="NAME=VALUE",
                        help="value of a ${NAME} placeholder (repeat for each; see the template's DefinitionSubstitutions)")
    deploy.add_argument("--region", default="us-east-1")
    deploy.set_defaults(func=_cmd_deploy_stepfunctions)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
