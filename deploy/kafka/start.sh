#!/bin/bash
# Entrypoint of the `kafka` service of docker-compose.yml (apache/kafka image, user appuser):
# server.properties (this folder) plus the broker's SCRAM login, read from the secrets volume;
# on the first start the storage is formatted with the cluster id and the broker's SCRAM user
# (`kafka-storage format --add-scram`, from an argument file: no password on a command line);
# then the broker runs in the foreground. Writes client.properties (the broker's own login)
# for the health check. The image's own start script is not used: it wants JKS keystores.
# The variables below only let tests/integration/test_compose_kafka.py run it outside Docker.
set -euo pipefail
umask 077

kafka_home=${KAFKA_HOME:-/opt/kafka}
secrets=${SENTIO_SECRETS:-/run/secrets/sentio}
template=${SENTIO_KAFKA_PROPERTIES:-/etc/sentio/kafka/server.properties}
work=${SENTIO_KAFKA_WORK:-/tmp/sentio-kafka}

mkdir -p "$work"
chmod 0700 "$work"
password=$(cat "$secrets/broker.password")
login="org.apache.kafka.common.security.scram.ScramLoginModule required username=\"sentio-broker\" password=\"$password\";"

cp "$template" "$work/server.properties"
printf '\nlistener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=%s\n' "$login" >>"$work/server.properties"

printf -- '--cluster-id=%s\n--add-scram\nSCRAM-SHA-512=[name=sentio-broker,password=%s]\n' \
  "$(cat "$secrets/cluster-id")" "$password" >"$work/format.args"
trap 'rm -f "$work/format.args"' EXIT
"$kafka_home/bin/kafka-storage.sh" format --ignore-formatted -c "$work/server.properties" "@$work/format.args"
rm -f "$work/format.args"
trap - EXIT

cat >"$work/client.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$login
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.pem
PROPERTIES

exec "$kafka_home/bin/kafka-server-start.sh" "$work/server.properties"
