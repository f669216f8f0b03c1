"""Serving the pages: the checks before start, the waitress WSGI server, and a
clean stop on Ctrl-C or SIGTERM.

Waitress is a pure-Python production server (threads, no fork), so the pages
run in this one process beside whatever writes the DB: reads are plain
queries on the WAL file and never block a writer; writes go through the
write client (directly, or to the dbserver when one is posted).
"""

import getpass
import ipaddress
import logging
import signal
import socket

from balsam import api, config, dbdir, logs
from balsam.exceptions import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
THREADS = 4
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def attach(cli_path):
    """Select the DB (``--path``/``--db``, then the usual order), make sure its
    secret key exists and is owner-only, and start Django with the admin apps."""
    selection = config.select_db(cli_path)
    if config.is_balsam_db(selection.path):
        # The pages change the DB (logins, jobs) and sign cookies with its key.
        config.require_write_access(selection.path, "serve this DB's web pages or change its logins")
        dbdir.ensure_secret_key(selection.path)  # before Django reads it
    selection = api.attach(cli_path, admin=True)
    logs.configure(selection.path, "web")
    _log_to_file("waitress", "django")
    return selection.path


def _log_to_file(*names):
    """Send the server's and Django's own logs (a 500's traceback) to
    ``log/web.log`` instead of the terminal."""
    handlers = [h for h in logging.getLogger("balsam").handlers if getattr(h, "_balsam", False)]
    for name in names:
        other = logging.getLogger(name)
        other.handlers = list(handlers)
        other.propagate = False
        other.setLevel(logging.INFO)


def check_schema(db_path):
    """Refuse a DB whose tables are older than this Balsam (``balsam init`` updates them)."""
    from balsam.django_config import unapplied_migrations

    if unapplied_migrations():
        raise ConfigError(f"the DB at {db_path} needs its tables updated for this Balsam; run: balsam init {db_path}")


def warm_up():
    """What the first page view would otherwise pay for: the URL configuration
    (the admin, the views) and the plotting library with its fonts."""
    from django.urls import resolve

    resolve("/")
    from balsam import analytics, plots

    plots.render(analytics.throughput(), "png")


def is_loopback(host):
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _url_host(host):
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_hosts(host):
    """The host names a browser may use to reach a server bound to ``host``
    (Django refuses the others: a DNS-rebinding guard). Always the loopback
    names; for any other address also the ``--host`` value, this machine's
    host names and the addresses they resolve to."""
    names = set(LOOPBACK_HOSTS)
    if not is_loopback(host):
        if host not in ("0.0.0.0", "::"):
            names.add(_url_host(host))
        hostname = socket.gethostname()
        names.update({hostname, hostname.split(".")[0], socket.getfqdn()})
        try:
            names.update(socket.gethostbyname_ex(hostname)[2])
        except OSError:
            pass
    return sorted(n for n in names if n)


def _bind_error(host, port, exc):
    import errno

    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another balsam web or server?); choose another with --port"
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} on {host} (ports below 1024 need root); choose another with --port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host}: not an address of this machine"
    if isinstance(exc, socket.gaierror):
        return f"cannot listen on {host!r}: unknown host name"
    return f"cannot listen on {host} port {port}: {exc.strerror or exc}"


class _Stop(SystemExit):
    """Raised in the main thread by the signal handler: waitress's loop ends on it."""


class WebServer:
    """The server, bound at construction (errors as one-line ``ConfigError``s),
    serving from ``run()`` until SIGINT or SIGTERM."""

    def __init__(self, db_path, host=DEFAULT_HOST, port=DEFAULT_PORT, threads=THREADS):
        import waitress
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler

        host = str(host).strip()
        if not host:
            raise ConfigError("--host must name an address or a host name, e.g. 127.0.0.1 (the default)")
        self.db_path, self.host = db_path, host
        check_schema(db_path)
        settings.ALLOWED_HOSTS = allowed_hosts(host)
        application = WSGIHandler()
        self._map = {}
        try:
            self._server = waitress.create_server(
                application, map=self._map, host=host, port=port, threads=threads, ident="balsam",
                clear_untrusted_proxy_headers=True, expose_tracebacks=False)
        except OSError as exc:
            self._close_sockets()
            raise ConfigError(_bind_error(host, port, exc)) from None
        except ValueError:  # waitress: the name did not resolve
            self._close_sockets()
            raise ConfigError(f"cannot listen on {host!r}: unknown host name") from None
        listening = getattr(self._server, "effective_listen", None)
        self.port = int(listening[0][1] if listening else self._server.effective_port)
        self.stopped_by = None
        warm_up()

    @property
    def url(self):
        shown = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{_url_host(shown)}:{self.port}/"

    def banner(self):
        """What ``balsam web`` prints when it starts: where to browse, and how
        to get there from a laptop."""
        lines = [f"balsam web: serving {self.db_path} at {self.url}"]
        if is_loopback(self.host):
            remote = f"{getpass.getuser()}@{socket.gethostname()}"
            lines.append(f"From your own computer: ssh -N -L {self.port}:127.0.0.1:{self.port} {remote}"
                         f"  then open http://localhost:{self.port}/")
        else:
            lines.append("Listening beyond this machine: a login is required, but the connection is not "
                         "encrypted; prefer the default 127.0.0.1 and an SSH tunnel.")
        from balsam.web.accounts import user_names

        if not user_names():
            lines.append("No login yet: add one with: balsam web adduser NAME")
        lines.append("Stop with Ctrl-C (or SIGTERM).")
        return "\n".join(lines)

    def run(self, announce=None):
        """Serve until SIGINT or SIGTERM; returns the signal's name.
        ``announce(banner)`` is called once the signals are handled (a signal
        right after the banner stops the server cleanly)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        logger.info("serving %s on %s", self.db_path, self.url)
        try:
            if announce:
                announce(self.banner())
            self._server.run()  # returns when _Stop is raised in its loop
        except _Stop:
            pass  # the signal came before the loop started
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._server.task_dispatcher.shutdown()  # lets requests in progress finish (5 s at most)
            self._close_sockets()
        logger.info("stopped by %s", self.stopped_by)
        return self.stopped_by

    def _on_signal(self, signum, frame):
        if self.stopped_by is None:
            self.stopped_by = signal.Signals(signum).name
            raise _Stop(0)

    def _close_sockets(self):
        from waitress import wasyncore

        wasyncore.close_all(self._map)
