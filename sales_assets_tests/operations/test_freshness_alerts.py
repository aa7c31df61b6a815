"""Guards "a stale day raises an alert": the fact table's freshness policy must not only show
in the UI; when its last materialization grows older than the policy's warn or fail window,
the freshness sensor must deliver one alert (warning, then error) naming the asset, its age,
the window it broke and the run that last updated it, must not repeat it every tick, and must
alert again after a recovery goes stale again. Time is moved by the test, not waited for."""

import datetime as dt
import json

import dagster as dg
import pytest

from sales_assets.definitions import defs
from sales_assets.operations import sensors
from sales_assets.operations.sensors import FRESHNESS_SENSOR_NAME, sales_freshness_alerts
from sales_assets.partitions import daily_partitions
from sales_assets.resources.alerts import LocalAlertsResource
from sales_assets.warehouse.assets import FACT_FRESHNESS_POLICY, FACT_SALES

UI = "http://dagster.example:3000"


@dg.asset(key=FACT_SALES, partitions_def=daily_partitions)
def _stand_in_fact_sales() -> None:
    """Records a fact_sales materialization in a real run without loading a warehouse."""


def _materialize(instance, day):
    result = dg.materialize([_stand_in_fact_sales], instance=instance, partition_key=day)
    assert result.success
    return result.run_id, instance.get_latest_materialization_event(FACT_SALES).timestamp


def _alerts(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class _Clock:
    def __init__(self, monkeypatch):
        self.now = None
        monkeypatch.setattr(sensors, "_utcnow", lambda: self.now)

    def at(self, timestamp, hours):
        self.now = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc) + dt.timedelta(hours=hours)


def _tick(instance, cursor, alerts_path):
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=defs,
        resources={"alerts": LocalAlertsResource(path=str(alerts_path), ui_base_url=UI)},
    )
    sales_freshness_alerts(context)
    return context.cursor


def test_the_freshness_sensor_is_registered_and_running():
    [sensor] = [s for s in defs.sensors if s.name == FRESHNESS_SENSOR_NAME]
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_a_stale_fact_table_alerts_once_per_state_and_again_after_recovery(tmp_path, monkeypatch):
    clock, alerts_path = _Clock(monkeypatch), tmp_path / "alerts.jsonl"
    warn_hours = FACT_FRESHNESS_POLICY.warn_window.to_timedelta().total_seconds() / 3600
    fail_hours = FACT_FRESHNESS_POLICY.fail_window.to_timedelta().total_seconds() / 3600
    with dg.instance_for_test() as instance:
        # Never materialized: nothing is stale yet (a fresh install must not alert).
        clock.now = dt.datetime.now(dt.timezone.utc)
        cursor = _tick(instance, None, alerts_path)
        assert _alerts(alerts_path) == []
        assert json.loads(cursor) == {"warehouse/fact_sales": "unknown"}

        run_id, loaded_at = _materialize(instance, "2025-03-01")
        clock.at(loaded_at, warn_hours - 0.5)
        cursor = _tick(instance, cursor, alerts_path)
        assert _alerts(alerts_path) == []

        clock.at(loaded_at, warn_hours + 0.5)
        cursor = _tick(instance, cursor, alerts_path)
        cursor = _tick(instance, cursor, alerts_path)  # still warn: no second alert
        [warning] = _alerts(alerts_path)
        assert warning["kind"] == "freshness" and warning["severity"] == "warning"
        assert warning["assets"] == ["warehouse/fact_sales"] and warning["partition"] == "2025-03-01"
        assert warning["run_url"] == f"{UI}/runs/{run_id}"
        assert f"warn window is {warn_hours:g} h" in warning["failure"]

        clock.at(loaded_at, fail_hours + 1)
        cursor = _tick(instance, cursor, alerts_path)
        cursor = _tick(instance, cursor, alerts_path)
        error = _alerts(alerts_path)[1]
        assert len(_alerts(alerts_path)) == 2
        assert error["severity"] == "error" and error["details"]["state"] == "fail"
        assert error["title"] == f"Stale: warehouse/fact_sales not updated for {fail_hours + 1:.1f} h"
        assert error["details"]["age_seconds"] == pytest.approx((fail_hours + 1) * 3600, abs=1)

        # The next day arrives: fresh again, silently; going stale again alerts again.
        _, reloaded_at = _materialize(instance, "2025-03-02")
        clock.at(reloaded_at, 1)
        cursor = _tick(instance, cursor, alerts_path)
        assert len(_alerts(alerts_path)) == 2 and json.loads(cursor) == {"warehouse/fact_sales": "fresh"}
        clock.at(reloaded_at, fail_hours + 2)
        _tick(instance, cursor, alerts_path)
        latest = _alerts(alerts_path)[-1]
        assert len(_alerts(alerts_path)) == 3 and latest["severity"] == "error" and latest["partition"] == "2025-03-02"


def test_a_sensor_started_while_stale_alerts_immediately(tmp_path, monkeypatch):
    clock, alerts_path = _Clock(monkeypatch), tmp_path / "alerts.jsonl"
    with dg.instance_for_test() as instance:
        _, loaded_at = _materialize(instance, "2025-03-01")
        clock.at(loaded_at, 48)
        _tick(instance, None, alerts_path)
        [alert] = _alerts(alerts_path)
        assert alert["severity"] == "error"
