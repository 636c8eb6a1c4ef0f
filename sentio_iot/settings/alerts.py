"""Settings: Alert rules and the alarm life cycle."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from sentio_iot.settings import Section


class Severity(StrEnum):
    """Alarm severity after ITU-T X.733, most severe first (the Alert schema's AlertSeverity)."""

    CRITICAL = "CRITICAL"
    MAJOR = "MAJOR"
    MINOR = "MINOR"
    WARNING = "WARNING"
    INDETERMINATE = "INDETERMINATE"


class RuleSettings(Section):
    """When a rule's condition fires an alert, and how often a firing alert is re-sent."""

    enabled: bool = Field(True, description="False: the rule never raises an alert.")
    severity: Severity = Field(Severity.MAJOR, description="Severity of the alerts it raises.")
    repeat: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Times the condition must be seen within window_s before the alert fires.",
    )
    window_s: float = Field(
        300.0, gt=0, description="Window (event time, s) in which the repeats are counted."
    )
    for_s: float = Field(
        0.0,
        ge=0,
        description="How long (event time, s) the condition must hold before the alert fires; 0: at once.",
    )
    suppress_s: float = Field(
        300.0,
        ge=0,
        description="Least time (s) between two records of one firing alert: repeats in between only raise its count. A change of severity or status is sent at once.",
    )

    @model_validator(mode="after")
    def _for_fits_the_window(self) -> RuleSettings:
        if self.repeat > 1 and self.for_s > self.window_s:
            raise ValueError(
                f"for_s ({self.for_s:g}) must not exceed window_s ({self.window_s:g}) when repeat > 1"
            )
        return self


class AnomalyRule(RuleSettings):
    """Alert type `anomaly`: anomalies of a device (any metric) repeat within a window."""

    severity: Severity = Field(Severity.MINOR, description="Severity of the alerts it raises.")
    repeat: int = Field(
        3,
        ge=1,
        le=10_000,
        description="Anomalies (any metric of the device) needed within window_s to fire.",
    )
    min_score: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Anomalies scoring below this are ignored by the rule.",
    )
    resolve_after_s: float = Field(
        900.0,
        gt=0,
        description="The alert resolves after this long (event time, s) without an anomaly.",
    )


class RulRule(RuleSettings):
    """Alert type `rul_low`: the predicted remaining useful life drops below a threshold."""

    repeat: int = Field(
        2,
        ge=1,
        le=10_000,
        description="Predictions below `below` needed within window_s to fire (one bad prediction is noise).",
    )
    below: float = Field(
        12.0,
        gt=0,
        description="Fire when the RUL is below this, in the prediction's rul_unit (the shipped plant models predict hours, capped at 48; C-MAPSS cycles, capped at 125).",
    )
    critical_below: float | None = Field(
        4.0,
        ge=0,
        description="Below this the alert is CRITICAL (escalated at once); null: never escalate.",
    )
    hysteresis: float = Field(
        6.0,
        ge=0,
        description="The alert resolves when the RUL rises above below + hysteresis.",
    )


class OfflineRule(RuleSettings):
    """Alert type `device_offline`: an OFFLINE device event; resolves on ONLINE."""

    for_s: float = Field(
        0.0,
        ge=0,
        description="How long (s) the device must stay offline before the alert fires; 0: at once (the device-state timeout already waited).",
    )


class AlertSettings(Section):
    """Alert rules and the alarm life cycle."""

    anomaly: AnomalyRule = Field(
        default_factory=lambda: AnomalyRule.model_validate({}),
        description="Rule of alert type `anomaly`.",
    )
    rul_low: RulRule = Field(
        default_factory=lambda: RulRule.model_validate({}),
        description="Rule of alert type `rul_low`.",
    )
    device_offline: OfflineRule = Field(
        default_factory=lambda: OfflineRule.model_validate({}),
        description="Rule of alert type `device_offline`.",
    )
    check_interval_s: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often (wall clock, s) pending conditions, quiet periods and suppressed repeats are re-checked.",
    )

    @model_validator(mode="after")
    def _critical_is_lower(self) -> AlertSettings:
        rule = self.rul_low
        if rule.critical_below is not None and rule.critical_below > rule.below:
            raise ValueError(
                f"rul_low.critical_below ({rule.critical_below:g}) must not exceed rul_low.below ({rule.below:g})"
            )
        return self
