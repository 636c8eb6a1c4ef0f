"""Faust agents: one module per agent; the logic they call lives in plain modules beside them.

The pattern (``rollups.py`` is the worked example)::

    from sentio_iot.streams.app import StreamApp

    def attach(app: StreamApp) -> None:
        state = app.table("my_state")                 # RocksDB + changelog, bytes -> bytes
        app.serde("anomalies")                        # output schema, registered at start-up

        @app.faust.agent(app.topic("readings"), name="sentio.my_agent")
        async def my_agent(stream):
            async for events in app.batches(stream):  # never stream.events(): see commit_gate.py
                for event in events:
                    app.metrics.events.inc("my_agent")
                    reading = await app.decode("my_agent", event, "readings")
                    if reading is None:               # poison: already dead-lettered
                        continue
                    with message_span("my_agent", event.message.headers) as span:
                        ...                           # call the pure, Kafka-free logic
                        with app.in_partition_of(event):
                            state[key] = new_state    # table writes go to the event's partition
                        await app.send("my_agent", "anomalies", reading["device_id"], record,
                                       source=event, headers=context_headers(span))

Which agents a worker runs: ``streams.agents`` (names in
``sentio_iot.settings.streams.AGENT_NAMES``); ``StreamApp`` imports
``sentio_iot.streams.agents.<name>`` and calls its ``attach``.
"""
