"""Faust agents: one module per agent; the logic they call lives in plain modules beside them.

The four agents that read ``readings`` (rollups, device_state, anomaly, rul) are steps of the
one readings agent (``streams/readings.py``); ``rollups.py`` is the worked example::

    from sentio_iot.streams.app import StreamApp
    from sentio_iot.streams.readings import ReadingBatch
    from sentio_iot.streams.state import dump_state, load_state

    def attach(app: StreamApp) -> None:
        app.serde("anomalies")                        # output schema, registered at start-up
        app.add_reading_step(MyStep(app))

    class MyStep:
        name = "my_agent"                             # metrics, logs, streams.agents
        topics = ()                                   # extra topics besides readings (ticks)

        def __init__(self, app: StreamApp) -> None:
            # in memory, written to the table's changelog once per key per commit
            self.states = app.live_states("my_state", lambda raw: load(load_state(raw)),
                                          lambda state: dump_state(state.to_state()))

        async def process(self, batch: ReadingBatch) -> None:
            for event, reading in batch.readings:     # decoded once; poison already dead-lettered
                state = self.states.get(reading["device_id"], event) or new_state()
                ...                                   # the pure, Kafka-free logic
                self.states.put(reading["device_id"], state, event)
                batch.emit("my_agent", "anomalies", reading["device_id"], record, event)

An agent on other topics (``alerts.py``) declares its own Faust agent and iterates
``app.batches(stream)`` (never ``stream.events()``: see ``commit_gate.py``).

Which agents a worker runs: ``streams.agents`` (names in
``sentio_iot.settings.streams.AGENT_NAMES``); ``StreamApp`` imports
``sentio_iot.streams.agents.<name>`` and calls its ``attach``.
"""
