"""The watchdog's side of a PostgreSQL DB: it runs ``postgres`` itself.

The same watchdog as for SQLite (one per DB, ``dbserver.lock``, restart at
once when the server dies, give up after five starts in a row that never
served), with PostgreSQL's server as the process it keeps: started in the
foreground on a free port (the last one when it is still free, so clients
find it again), posted in the address file once it accepts a password login,
stopped with PostgreSQL's "fast" shutdown (a "smart" one would wait for every
launcher to disconnect).
"""

import logging
import os
import signal
import subprocess
import sys
import time

from balsam.dbserver import watchdog
from balsam.dbserver.watchdog import STOP_GRACE_SEC, Watchdog
from balsam.postgres import cluster
from balsam.postgres.credentials import DATABASE, pg_credentials
from balsam.exceptions import BalsamError
from balsam.wire.serverinfo import db_file_inode

logger = logging.getLogger("balsam.dbserver.watchdog")
RETRY_PAUSE_SEC = 0.5  # after a start that failed: a killed server's children need a moment to exit


def address_of(host, port):
    return f"postgresql://{host}:{port}/{DATABASE}"


class PostgresWatchdog(Watchdog):
    def _spawn(self):
        try:
            previous = self.info.read().get("port")
        except BalsamError:
            previous = None
        port = cluster.free_port(self.host, preferred=previous)
        if cluster.clear_foreign_lock(self.db_path):
            logger.info("removed %s/postmaster.pid: it locked another cluster (this DB was copied from it)",
                        cluster.pg_dir(self.db_path))
        command = cluster.server_command(self.db_path, self.host, port)
        log = open(self.db_path / "log" / "dbserver.out", "ab")
        try:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                       start_new_session=True)
        finally:
            log.close()
        if cluster.wait_ready(self.host, port, pg_credentials(self.db_path), process):
            self._post(db_type="postgres", address=address_of(self.host, port), local_address=None,
                       host=self.host, port=port, server_pid=process.pid, started=time.time(),
                       db_path=str(self.db_path.resolve()), db_inode=db_file_inode(self.db_path))
            logger.info("PostgreSQL serving %s on %s:%d (pid %d)", self.db_path, self.host, port, process.pid)
        else:
            if process.poll() is None:
                logger.error("PostgreSQL pid %d did not accept logins within %d s; stopping it",
                             process.pid, cluster.READY_TIMEOUT_SEC)
                self._stop(process)
            time.sleep(RETRY_PAUSE_SEC)
        return process

    def _stop_server(self):
        if self.server is not None and self.server.poll() is None:
            self._stop(self.server)

    @staticmethod
    def _stop(process):
        process.send_signal(signal.SIGINT)  # "fast" shutdown: open sessions are ended
        try:
            process.wait(timeout=STOP_GRACE_SEC)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGQUIT)  # "immediate"
            try:
                process.wait(timeout=STOP_GRACE_SEC)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def answers(db_path, info):
    """Does the posted PostgreSQL server accept this user's login?"""
    try:
        cluster.connect(info["host"], info["port"], pg_credentials(db_path), timeout=2).close()
        return True
    except BalsamError:
        return False


def status(db_path, info):
    """``balsam dbserver --status`` on a PostgreSQL DB: the posted server and its figures."""
    figures = cluster.figures(info["host"], info["port"], pg_credentials(db_path))
    figures.update(db_type="postgres", address=info.get("address"), host=info.get("host"), port=info.get("port"),
                   pid=info.get("server_pid"), started=info.get("started"), watchdog_pid=info.get("watchdog_pid"),
                   restarts=info.get("restarts", 0), uptime_sec=time.time() - (info.get("started") or time.time()))
    return figures


if __name__ == "__main__":  # run by `balsam dbserver` (control.start) for a PostgreSQL DB
    sys.exit(watchdog.main(make=lambda args: PostgresWatchdog(args.path, args.host)))
