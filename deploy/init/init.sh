#!/bin/sh
# One-shot before every other service of docker-compose.yml (service `init`, run as root):
# hands each new named volume to the user its image runs as, and generates every password
# once, on the first start, into the `secrets` volume. Nothing has a default password; a
# later start keeps the passwords already there. Read one with e.g.
#   docker compose exec grafana cat /run/secrets/sentio/grafana/admin-password
set -eu
umask 077

# Apicurio Registry runs as uid 1001 (group 0); Tempo as 10001.
chown -R 1001:0 /volumes/registry
chown -R 10001:10001 /volumes/tempo

# secret FILE: 32 random letters and digits, written once.
secret() {
  if [ ! -s "$1" ]; then
    tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32 >"$1.new"
    mv "$1.new" "$1"
  fi
}

mkdir -p /secrets/grafana /secrets/mosquitto
secret /secrets/grafana/admin-password
chown -R 472:0 /secrets/grafana            # Grafana's uid
chmod 0500 /secrets/grafana
chmod 0400 /secrets/grafana/admin-password

# Mosquitto's users (deploy/mosquitto/acl): a clear password per user, and the password file
# rebuilt from them as hashes (mosquitto_passwd -U hashes a user:password file in place, so
# no password appears on a command line).
: >/secrets/mosquitto/passwd.new
for user in devices sentio; do
  secret "/secrets/mosquitto/$user-password"
  printf '%s:%s\n' "$user" "$(cat "/secrets/mosquitto/$user-password")" >>/secrets/mosquitto/passwd.new
done
mosquitto_passwd -U /secrets/mosquitto/passwd.new
mv /secrets/mosquitto/passwd.new /secrets/mosquitto/passwd
chown -R 1883:1883 /secrets/mosquitto      # Mosquitto's uid
chmod 0700 /secrets/mosquitto
chmod 0600 /secrets/mosquitto/*
echo "init: volumes owned by their services; passwords in the secrets volume"
