"""``sentio deadletter``: inspect the dead-letter topic and send its messages again."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from sentio_iot.cli.options import config_option, load
from sentio_iot.config import SentioConfig

if TYPE_CHECKING:
    from sentio_iot.dead_letter_replay import DeadLetterEntry

F = TypeVar("F", bound=Callable[..., Any])


@click.group("deadletter")
def deadletter_group() -> None:
    """Messages a stage could not decode or write: list them, replay them."""


def _filters(function: F) -> F:
    options = [
        click.option("--stage", help="Only this stage or its children (sinks, streams.readings)."),
        click.option("--topic", "original", help="Only dead letters of this original topic."),
        click.option("--since", help="Only newer ones: an age (30m, 2h, 1d) or an ISO-8601 time."),
        click.option(
            "--limit", type=click.IntRange(min=1), help="At most this many, oldest first."
        ),
        click.option("--prefix", help="Topic prefix of the deployment (default: topics.prefix)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _select(
    config_path: Path | None,
    prefix: str | None,
    stage: str | None,
    original: str | None,
    since: str | None,
    limit: int | None,
) -> tuple[SentioConfig, list[DeadLetterEntry]]:
    from sentio_iot.dead_letter_replay import parse_since, read_dead_letters
    from sentio_iot.registry import SchemaRegistry

    config = load(config_path)
    if prefix is not None:
        config = config.model_copy(
            update={"topics": config.topics.model_copy(update={"prefix": prefix})}
        )
    after = parse_since(since) if since else None
    with SchemaRegistry(config.schema_registry) as registry:
        entries = read_dead_letters(
            config, registry, stage=stage, topic=original, since=after, limit=limit
        )
    return config, entries


@deadletter_group.command("list")
@config_option
@_filters
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_dead_letters(
    config_path: Path | None,
    stage: str | None,
    original: str | None,
    since: str | None,
    limit: int | None,
    prefix: str | None,
    as_json: bool,
) -> None:
    """Show each dead letter: when, which stage, why, where the original was, its size."""
    from sentio_iot.dead_letter_replay import dead_letter_topic

    config, entries = _select(config_path, prefix, stage, original, since, limit)
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.summary()))
        return
    rows = [("TIME (UTC)", "STAGE", "ORIGINAL", "SIZE", "REASON")]
    for entry in entries:
        size = f"{entry.size:,}" + (" (truncated)" if entry.truncated else "")
        reason = f"{entry.record['error_type']}: {entry.record['error']}"
        rows.append(
            (
                entry.when.strftime("%Y-%m-%d %H:%M:%S"),
                entry.record["stage"],
                entry.coordinates,
                size,
                reason[:160],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        click.echo("  ".join([*cells, row[4]]))
    click.echo(f"{len(entries)} dead letter(s) in {dead_letter_topic(config)}")


@deadletter_group.command("replay")
@config_option
@_filters
@click.option("--to", "target", help="Send to this topic instead of each one's original topic.")
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send nothing.")
def replay_dead_letters(
    config_path: Path | None,
    stage: str | None,
    original: str | None,
    since: str | None,
    limit: int | None,
    prefix: str | None,
    target: str | None,
    dry_run: bool,
) -> None:
    """Send the original key, value and headers of each dead letter to its topic again.

    Truncated dead letters (originals over 256 KiB) are refused, each with where to find
    the original. Fix the cause first (a schema, a sink's settings), or they come back.
    """
    from sentio_iot.dead_letter_replay import replay

    config, entries = _select(config_path, prefix, stage, original, since, limit)
    result = replay(config, entries, to=target, dry_run=dry_run)
    for entry, reason in result.refused:
        click.echo(f"refused {entry.coordinates} ({entry.record['stage']}): {reason}")
    verb = "would replay" if dry_run else "replayed"
    where = target or "their original topics"
    click.echo(
        f"{verb} {result.sent} of {len(entries)} dead letter(s) to {where}; "
        f"{len(result.refused)} refused"
    )
