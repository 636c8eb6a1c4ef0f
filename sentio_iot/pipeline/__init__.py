"""The main job's orchestrator: the whole pipeline on this machine, supervised, with a live view.

``sentio run`` (:mod:`.main_job`) starts the simulated plant (:mod:`.plant`), the stream
workers and the sinks (:mod:`.workers`) as child processes (:mod:`.processes`) that share
one configuration file (:mod:`.run_config`), and :mod:`.orchestrator` watches them: their
``/health`` and ``/metrics`` (:mod:`.probes`), Kafka's consumer lag (:mod:`.lag`) and the
result topics (:mod:`.results`), drawn by :mod:`.liveview`.
"""
