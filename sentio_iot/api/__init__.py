"""The live API (`sentio api`): REST and WebSocket access to the pipeline behind JWT auth.

    settings   sentio_iot.settings.api           typed configuration (`api:` section)
    store      SQLite file in the state folder    users, API keys, refresh tokens (mode 0600)
    passwords  argon2id hashes                    users.py
    keys       Ed25519 signing keys + JWKS        keys.py
    tokens     access JWTs, rotating refresh      tokens.py, refresh.py
    auth       who is calling, may they           principal.py, auth.py, ratelimit.py
    views      latest state from Kafka            views.py, feed.py
    history    VictoriaMetrics query_range        history.py
    REST       /api/v1/...                        routes_*.py, schemas.py
    live       WebSocket /api/v1/live             live.py, hub.py, client_queue.py
    server     FastAPI app + uvicorn              app.py, server.py

Nothing here connects or builds global state at import time; ``app.create_app`` does.
"""
