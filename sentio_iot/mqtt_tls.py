"""TLS towards an MQTT broker: the SSL context from typed settings, and why a handshake failed.

Used by the MQTT connector and the Home Assistant sink. The context verifies the broker's
certificate (``ca_file``, else the system's CAs) and its host name, and presents a client
certificate when ``cert_file`` and ``key_file`` are set (``key_password`` for an encrypted
key). A file that cannot be loaded is a ConfigError naming the field.

paho reports a refused TLS handshake as "Unspecified error" or "connection refused"; a
broker that refuses our client certificate does so only after the handshake, in an alert.
:func:`diagnose` opens one TLS connection itself and turns what failed into one line with
the field to change.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field

from pydantic import SecretStr

from sentio_iot.errors import ConfigError
from sentio_iot.secret_values import secret_value


@dataclass(frozen=True)
class MqttTls:
    """The TLS settings of one MQTT client; ``where`` names them in errors, e.g.
    ``sinks.homeassistant`` or ``producers.mqtt source plant``."""

    where: str
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: SecretStr | None = field(default=None, repr=False)

    def context(self) -> ssl.SSLContext:
        """The client SSL context; ConfigError naming the field when a file is unusable."""
        try:
            context = ssl.create_default_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.where}: ca_file: {self.ca_file} cannot be loaded ({_short(exc)}); "
                "give the PEM file of the CA that issued the broker's certificate"
            ) from exc
        # paho leaves the socket of a failed handshake open (a ResourceWarning per retry)
        context.sslsocket_class = ClosingSSLSocket
        if self.cert_file is None:
            return context
        try:
            context.load_cert_chain(self.cert_file, self.key_file, secret_value(self.key_password))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{self.where}: cert_file: {self.cert_file} with key_file {self.key_file} cannot "
                f"be loaded ({_short(exc)}); check both files (PEM) and key_password"
            ) from exc
        return context

    def diagnose(self, host: str, port: int, timeout_s: float = 3.0) -> str | None:
        """Why a TLS connection to the broker fails, in one line; None when it does not (or
        when the failure is not TLS: unreachable, refused)."""
        context = self.context()
        try:
            with (
                socket.create_connection((host, port), timeout_s) as raw,
                context.wrap_socket(raw, server_hostname=host) as tls,
            ):
                tls.settimeout(min(timeout_s, 1.0))
                try:
                    tls.recv(1)  # a broker refusing our certificate says so now (TLS 1.3)
                except TimeoutError:
                    return None  # it waits for our CONNECT: TLS is fine
                except ssl.SSLError as exc:
                    return self._refused(exc)
                return None
        except ssl.SSLCertVerificationError as exc:
            trusted = self.ca_file or "the system's CAs"
            return (
                f"{self.where}: ca_file: the broker {host}:{port} presents a certificate that is "
                f"not trusted ({exc.verify_message}; trusted: {trusted}); fix: set ca_file to the "
                "CA that issued it, and connect by a host name the certificate names"
            )
        except ssl.SSLError as exc:
            return self._refused(exc)
        except OSError:
            return None

    def _refused(self, exc: ssl.SSLError) -> str:
        reason = _short(exc)
        if self.cert_file is None:
            return (
                f"{self.where}: cert_file: the broker refused the TLS connection ({reason}): it "
                "wants a client certificate; fix: set cert_file and key_file to one its CA issued"
            )
        return (
            f"{self.where}: cert_file: the broker refused our client certificate {self.cert_file} "
            f"({reason}); fix: use a certificate issued by a CA the broker trusts (its cafile)"
        )


class ClosingSSLSocket(ssl.SSLSocket):
    """Closes itself when its handshake fails, which paho's caller does not."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def _short(exc: BaseException) -> str:
    text = getattr(exc, "reason", None) or str(exc)
    return " ".join(str(text).split())[:200]
