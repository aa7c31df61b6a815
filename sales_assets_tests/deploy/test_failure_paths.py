"""The exported poll loops and Catch paths, executed against scripted AWS responses.

Risk guarded: the bugs of the public reference state machines coming back — a crawler loop
that treats READY as success and passes a FAILED or CANCELLED crawl, a Redshift poll that
spins forever (or succeeds) on ABORTED, a Glue job or Lambda failure that ends the execution
without the SNS alert — a happy path that never reaches the end, and a load whose row count
never reaches CloudWatch (the "no rows loaded" alarm would then fire every day).
"""

from __future__ import annotations

import pytest

from sales_assets.definitions import defs
from sales_assets.deploy import asl
from sales_assets.resources import metrics
from sales_assets_tests.deploy.asl_interpreter import Execution, TaskError

DAY = {"order_date": "2026-11-20", "results": {}}
SNS = "arn:aws:states:::sns:publish"
LOADED_ROWS = 42


@pytest.fixture(scope="module")
def day_machine():
    return asl.build_state_machine(asl.pipeline_steps(defs))["States"]["Days"]["ItemProcessor"]


def scripted(crawls=("RUNNING", ("READY", "SUCCEEDED")), statements=("STARTED", "FINISHED"), glue_error=None,
             lambda_error=None, metric_error=None):
    """A responder: crawler states and Redshift statuses are consumed in order, one per poll.

    Once the statuses are used up, describeStatement keeps answering the last one; a FINISHED
    batch carries SubStatements as the Data API returns them, ResultRows per statement.
    """
    crawls, statements = list(crawls), list(statements)
    fact_index = asl.fact_insert_index(asl.redshift_day_load_sqls())
    last = [None]

    def respond(name: str, resource: str, params: dict) -> dict:
        if resource.endswith("lambda:invoke"):
            if lambda_error:
                raise TaskError(lambda_error, "the function raised")
            return {"Payload": {"date": params["Payload"]["date"], "orders": 3}}
        if resource.endswith("glue:startCrawler"):
            return {}
        if resource.endswith("glue:getCrawler"):
            step = crawls.pop(0)
            if isinstance(step, tuple):
                return {"Crawler": {"State": step[0], "LastCrawl": {"Status": step[1], "ErrorMessage": "boom"}}}
            return {"Crawler": {"State": step, "LastCrawl": {"Status": "SUCCEEDED"}}}  # the previous crawl
        if resource.endswith("glue:startJobRun.sync"):
            if glue_error:
                raise TaskError(glue_error, "JobRunState FAILED")
            return {"Id": "jr_1", "JobRunState": "SUCCEEDED"}
        if resource.endswith("batchExecuteStatement"):
            return {"Id": "stmt-1"}
        if resource.endswith("describeStatement"):
            last[0] = statements.pop(0) if statements else last[0]
            response = {"Id": params["Id"], "Status": last[0]}
            if last[0] == "FINISHED":
                response["SubStatements"] = [
                    {"Id": f"{params['Id']}:{i + 1}", "Status": "FINISHED",
                     "ResultRows": LOADED_ROWS if i == fact_index else 0}
                    for i in range(len(asl.redshift_day_load_sqls()))
                ]
            return response
        if resource.endswith("cloudwatch:putMetricData"):
            if metric_error:
                raise TaskError(metric_error)
            return {}
        if resource == SNS:
            return {"MessageId": "m-1"}
        raise AssertionError(f"unexpected task {name} {resource}")

    return respond


def resources(run: Execution) -> list[str]:
    return [resource.rsplit(":", 2)[-1] if "aws-sdk" in resource else resource.rsplit(":::", 1)[-1]
            for _, resource, _ in run.calls]


def test_happy_path_runs_every_step_and_sends_no_alert(day_machine):
    run = Execution(scripted())
    outcome, output = run.run(day_machine, DAY)
    assert outcome == "Succeeded"
    assert SNS not in [r for _, r, _ in run.calls]
    assert resources(run) == ["lambda:invoke", "startCrawler", "getCrawler", "getCrawler", "glue:startJobRun.sync",
                              "batchExecuteStatement", "describeStatement", "describeStatement",
                              "describeStatement", "putMetricData"]
    assert run.waits == 4  # two crawler polls, two statement polls
    assert output["results"]["WarehouseTables"] == {"Id": "stmt-1", "Status": "FINISHED", "Rows": LOADED_ROWS}
    # The Glue job gets the partition date from the execution input, as the script expects it.
    glue = next(p for _, r, p in run.calls if r.endswith("startJobRun.sync"))
    assert glue["Arguments"]["--order_date"] == "2026-11-20" and glue["Arguments"]["--lake_root"] == "${LakeRoot}"


def test_loaded_rows_are_put_as_the_pipeline_rows_metric(day_machine):
    # The same namespace, name and dimensions MetricsResource puts, so the template's alarm sees it.
    run = Execution(scripted())
    run.run(day_machine, DAY)
    put = next(p for _, r, p in run.calls if r.endswith("cloudwatch:putMetricData"))
    assert put["Namespace"] == "${MetricsNamespace}"
    [datum] = put["MetricData"]
    assert datum["MetricName"] == metrics.METRIC_ROWS and datum["Value"] == LOADED_ROWS
    assert datum["Dimensions"] == [{"Name": metrics.DIMENSION_ASSET, "Value": "warehouse/fact_sales"},
                                   {"Name": metrics.DIMENSION_STAGE, "Value": "warehouse"}]


def test_rows_are_not_published_before_the_batch_finished(day_machine):
    # An ABORTED batch must not put a row count (the alarm would read a partial load as loaded).
    run = Execution(scripted(statements=("STARTED", "ABORTED")))
    run.run(day_machine, DAY)
    assert "putMetricData" not in resources(run)


def test_metric_put_failure_alerts_and_fails(day_machine):
    run = Execution(scripted(metric_error="CloudWatch.CloudWatchException"))
    outcome, _ = run.run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert resources(run)[-2:] == ["putMetricData", "sns:publish"]


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_crawl_that_ends_ready_but_failed_alerts_and_fails(day_machine, status):
    run = Execution(scripted(crawls=("RUNNING", "STOPPING", ("READY", status))))
    outcome, output = run.run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert resources(run)[-1] == "sns:publish"
    assert "startJobRun.sync" not in " ".join(resources(run))  # nothing downstream ran
    assert output["failure"]["Error"] == "CrawlFailed" and status in output["failure"]["Cause"]


def test_redshift_aborted_alerts_and_fails(day_machine):
    run = Execution(scripted(statements=("SUBMITTED", "STARTED", "ABORTED")))
    outcome, output = run.run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert resources(run)[-1] == "sns:publish"
    assert resources(run).count("describeStatement") == 3
    assert output["failure"]["Error"] == "StatementFailed" and "ABORTED" in output["failure"]["Cause"]


def test_redshift_failed_alerts_and_fails(day_machine):
    outcome, _ = Execution(scripted(statements=("FAILED",))).run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")


def test_glue_job_failure_alerts_and_fails(day_machine):
    run = Execution(scripted(glue_error="States.TaskFailed"))
    outcome, output = run.run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert resources(run)[-2:] == ["glue:startJobRun.sync", "sns:publish"]
    assert output["failure"]["Error"] == "States.TaskFailed"


def test_lambda_function_error_alerts_and_fails(day_machine):
    run = Execution(scripted(lambda_error="LambdaConfigurationError"))
    outcome, _ = run.run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
    assert resources(run) == ["lambda:invoke", "sns:publish"]


def test_failed_alert_still_fails_the_execution(day_machine):
    others = scripted(glue_error="States.TaskFailed")

    def respond(name, resource, params):
        if resource == SNS:
            raise TaskError("SNS.AuthorizationErrorException")
        return others(name, resource, params)

    outcome, _ = Execution(respond).run(day_machine, DAY)
    assert outcome == ("Failed", "SalesPipelineFailed")
