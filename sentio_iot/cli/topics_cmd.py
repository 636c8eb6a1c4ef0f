"""``sentio topics``: apply the topic catalog to Kafka and show its live state."""

from __future__ import annotations

from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.schemas.catalog import CATALOG


@click.group("topics")
def topics_group() -> None:
    """The topic catalog: every topic, its key, schema, partitions and retention."""


@topics_group.command("apply")
@config_option
def apply(config_path: Path | None) -> None:
    """Create or update every catalog topic (idempotent: a second run changes nothing)."""
    from sentio_iot.topic_admin import apply_topics

    config = load(config_path)
    changes = apply_topics(config)
    for change in changes:
        click.echo(f"{change.action:<10} {change.topic}: {change.detail}")
    click.echo(
        f"{len(changes)} change(s); {len(CATALOG)} topics in the catalog"
        if changes
        else f"no changes: all {len(CATALOG)} catalog topics already match"
    )


@topics_group.command("list")
@config_option
def list_topics(config_path: Path | None) -> None:
    """Show every catalog topic with its live state in Kafka."""
    from sentio_iot.topic_admin import topic_states

    config = load(config_path)
    rows = [("TOPIC", "SCHEMA", "KEY", "PARTITIONS", "CLEANUP", "RETENTION", "MESSAGES")]
    states = topic_states(config)
    for state in states:
        spec = state.spec
        if state.exists:
            retention = state.configs.get("retention.ms", "?")
            days = f"{int(retention) / 86_400_000:g}d" if retention.isdigit() else retention
            rows.append(
                (
                    state.topic,
                    spec.value_schema or "bytes",
                    spec.key,
                    str(state.partitions),
                    state.configs.get("cleanup.policy", "?"),
                    days,
                    str(state.end_offsets),
                )
            )
        else:
            rows.append(
                (state.topic, spec.value_schema or "bytes", spec.key, "missing", "-", "-", "-")
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if any(not s.exists for s in states):
        click.echo("some topics are missing: run `sentio topics apply`")
