#!/bin/sh
# One-shot before every other service of docker-compose.yml (service `init`, the Sentio image
# run as root without a network): hands each new named volume to the user its image runs as,
# then `sentio compose secrets` generates every password, the Kafka CA and the broker's
# certificate once, on the first start, into the `secrets` volume (kept at later starts), and
# writes each service's own folder of it, owned by that service's user
# (sentio_iot/stack/compose_secrets.py; docs/security.md). Nothing has a default password.
# Read one with e.g.
#   docker compose exec grafana cat /run/secrets/sentio/admin-password
set -eu
umask 077

# Apicurio Registry runs as uid 1001 (group 0); Tempo as 10001; Keycloak as 1000 (group 0).
chown -R 1001:0 /volumes/registry
chown -R 10001:10001 /volumes/tempo
chown -R 1000:0 /volumes/keycloak

sentio compose secrets /secrets
