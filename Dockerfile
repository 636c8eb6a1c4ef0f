# One image for every Sentio worker: `docker run sentio-iot produce simulate -c ...`,
# `stream worker -c ...`, `sink victoriametrics -c ...` (see docker-compose.yml).

# The web dashboard, built from its lockfile; `sentio api` serves it (SENTIO_DASHBOARD_DIR).
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci
COPY web ./
RUN npm run build

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Dependencies in their own layer (from pyproject.toml alone), so a code change does not
# reinstall them; then the package itself.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && pip install -r requirements.txt
COPY sentio_iot ./sentio_iot
COPY producers ./producers
COPY streams ./streams
COPY sinks ./sinks
COPY schemas ./schemas
RUN pip install --no-deps . && rm -rf /src
COPY --from=web /web/dist /opt/sentio/dashboard

# Workers run unprivileged; state (producer buffer, stream worker data, model store) lives under
# /var/lib/sentio, a volume in docker-compose.yml.
RUN useradd --system --uid 10001 --home-dir /var/lib/sentio --create-home sentio \
    && mkdir -p /etc/sentio /var/lib/sentio/buffer /var/lib/sentio/streams /var/lib/sentio/api \
       /var/lib/sentio/models \
    && chown -R sentio:sentio /var/lib/sentio
ENV XDG_STATE_HOME=/var/lib/sentio \
    XDG_CACHE_HOME=/var/lib/sentio/cache \
    SENTIO_DASHBOARD_DIR=/opt/sentio/dashboard
USER sentio
WORKDIR /var/lib/sentio

ENTRYPOINT ["sentio"]
CMD ["--help"]
