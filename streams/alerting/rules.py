"""The three alert rules: what an input means for its alert (a hit, a clear, or nothing).

- ``anomaly``: every Anomaly (score >= ``min_score``) of a device is a hit, whatever its
  metric: anomalies of one device group into one alert. Event condition: it fires on the
  ``repeat``-th anomaly within ``window_s`` and resolves after ``resolve_after_s`` of quiet.
- ``rul_low``: a RulPrediction below ``below`` is a hit (CRITICAL below ``critical_below``);
  above ``below + hysteresis`` it clears; in between it changes nothing. Holding condition.
- ``device_offline``: a DeviceEvent OFFLINE is a hit, ONLINE clears. Holding condition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sentio_iot.settings.alerts import AnomalyRule, OfflineRule, RulRule, Severity
from sentio_iot.streams.alerting.lifecycle import Hit

ANOMALY = "anomaly"
RUL_LOW = "rul_low"
DEVICE_OFFLINE = "device_offline"
ALERT_TYPES = (ANOMALY, RUL_LOW, DEVICE_OFFLINE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one input means for the alert of its (device, type)."""

    hit: Hit | None = None  # the condition was seen
    clear_ts: int | None = None  # the condition ended at this time


NOTHING = Verdict()


def anomaly_verdict(rule: AnomalyRule, anomaly: Mapping[str, Any]) -> Verdict:
    if not rule.enabled or anomaly["score"] < rule.min_score:
        return NOTHING
    metric, value, score = anomaly["metric"], anomaly["value"], anomaly["score"]
    details = {
        "metric": str(metric),
        "value": f"{value:g}",
        "score": f"{score:.3f}",
        "threshold": f"{anomaly['threshold']:g}",
        "detector": str(anomaly["detector"]),
    }
    if anomaly.get("expected") is not None:
        details["expected"] = f"{anomaly['expected']:g}"
    message = f"{anomaly['device_id']} anomaly: {metric}={value:g} (score {score:.2f})"
    return Verdict(
        hit=Hit(anomaly["ts"], rule.severity.value, message, details, dict(anomaly["labels"]))
    )


def rul_verdict(rule: RulRule, prediction: Mapping[str, Any]) -> Verdict:
    rul, unit, ts = float(prediction["rul"]), str(prediction["rul_unit"]), prediction["ts"]
    if rul > rule.below + rule.hysteresis:
        return Verdict(clear_ts=ts)
    if not rule.enabled or rul >= rule.below:
        return NOTHING
    critical = rule.critical_below is not None and rul < rule.critical_below
    severity = Severity.CRITICAL.value if critical else rule.severity.value
    details = {
        "rul": f"{rul:g}",
        "rul_unit": unit,
        "below": f"{rule.below:g}",
        "model": f"{prediction['model_name']}:{prediction['model_version']}",
    }
    message = f"{prediction['device_id']} remaining useful life {rul:g} {unit} < {rule.below:g}"
    return Verdict(hit=Hit(ts, severity, message, details, dict(prediction["labels"])))


def offline_verdict(rule: OfflineRule, event: Mapping[str, Any]) -> Verdict:
    kind, ts = event["kind"], event["ts"]
    if kind == "ONLINE":
        return Verdict(clear_ts=ts)
    if kind != "OFFLINE" or not rule.enabled:
        return NOTHING
    message = f"{event['device_id']} OFFLINE" + (
        f": {event['message']}" if event["message"] else ""
    )
    details = {str(k): str(v) for k, v in event["details"].items()}
    details["source"] = str(event["source"])
    return Verdict(hit=Hit(ts, rule.severity.value, message, details, dict(event["labels"])))
