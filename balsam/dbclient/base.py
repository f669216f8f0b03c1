"""The write-path interface every client implements.

Call sites (models, api, launcher, service) use these methods and never know
whether the write is applied in-process or by the dbserver. A client only has
to implement ``request(op, payload)``; operation names and payloads are the
whitelist in ``balsam.core.operations`` and must stay JSON-able (job ids may
be ``UUID``s: the wire sends their text, an in-process client skips it).
"""

from abc import ABC, abstractmethod


class ServerGone(Exception):
    """The server was stopped cleanly (address cleared) while ``request_id`` waited.

    It may have committed the request just before stopping: look its id up in
    the applied-request table before applying it any other way.
    """

    def __init__(self, request_id=None):
        super().__init__(request_id)
        self.request_id = request_id


class WriteClient(ABC):
    mode = "?"

    @abstractmethod
    def request(self, op, payload):
        """Apply one operation durably and return its result (or raise BalsamError)."""

    def describe(self):
        return self.mode

    def close(self):
        """Release connections (sockets); the client must not be used afterwards."""

    # -- generic, used by the routed model methods ------------------------------
    def create(self, kind, rows):
        return self.request(f"create_{kind}", {"rows": rows})

    def update(self, kind, ids, fields):
        return self.request(f"update_{kind}", {"ids": ids, "fields": fields})

    def delete(self, kind, ids):
        return self.request(f"delete_{kind}", {"ids": ids})

    # -- jobs -------------------------------------------------------------------
    def transition(self, ids, state, message="", strict=True):
        return self.request("transition_jobs", {"ids": ids, "state": state, "message": message, "strict": strict})

    def kill(self, ids, recursive=True, message="killed by user"):
        return self.request("kill_jobs", {"ids": ids, "recursive": recursive, "message": message})

    def add_dependency(self, parent, child):
        return self.request("add_dependency", {"parent": parent, "child": child})

    def remove_dependency(self, parent, child):
        return self.request("remove_dependency", {"parent": parent, "child": child})

    def resolve_dependencies(self, ids):
        """Move the waiting jobs among ``ids`` on as their parents allow (checked in the write itself)."""
        return self.request("resolve_dependencies", {"ids": [str(i) for i in ids]})

    def update_each(self, items):
        """Different field values per job in one request: ``[(id, {field: value})]``."""
        return self.request("update_jobs_each", {"items": [[str(i), f] for i, f in items]})

    # -- leases -------------------------------------------------------------------
    def claim(self, owner, states, limit, lease_expiry_sec, scope=None):
        """Lease up to ``limit`` jobs; ``scope``: options of ``core.queries.job_scope``."""
        payload = {"owner": owner, "states": list(states), "limit": limit, "lease_expiry_sec": lease_expiry_sec}
        if scope:
            payload["scope"] = scope
        return self.request("claim_jobs", payload)

    def heartbeat(self, owner, ids=None, lease_expiry_sec=None):
        """Renew ``owner``'s leases (for ``lease_expiry_sec``, default the operation's 180 s)."""
        payload = {"owner": owner, "ids": ids}
        if lease_expiry_sec is not None:
            payload["lease_expiry_sec"] = lease_expiry_sec
        return self.request("heartbeat_leases", payload)

    def apply_batch(self, moves, fields, release_owner, release_ids, notes=()):
        """Several moves ``(ids, state, message)`` or ``(ids, state, message,
        times)`` (epoch seconds, one per id), field updates, notes ``(ids,
        message)`` and lease releases in one request."""
        payload = {
            "moves": [[list(ids), *rest] for ids, *rest in moves],
            "fields": [[i, f] for i, f in fields],
            "release_owner": release_owner,
            "release_ids": list(release_ids),
        }
        if notes:
            payload["notes"] = [[list(ids), message] for ids, message in notes]
        return self.request("apply_batch", payload)

    def tie_jobs(self, launch_id, limit, scope=None):
        return self.request("tie_jobs", {"launch_id": launch_id, "limit": limit, "scope": scope or {}})

    def end_launch(self, launch_id, state):
        return self.request("end_launch", {"launch_id": launch_id, "state": state})

    def recover_expired(self, lease_expiry_sec):
        return self.request("recover_expired_leases", {"lease_expiry_sec": lease_expiry_sec})

    def release(self, owner, ids=None):
        return self.request("release_leases", {"owner": owner, "ids": ids})

    # -- clean-up (balsam db check --repair) ---------------------------------------
    def settle_orphaned_waiters(self):
        return self.request("settle_orphaned_waiters", {})

    def prune_applied_requests(self, retention_sec):
        return self.request("prune_applied_requests", {"retention_sec": retention_sec})

    def apply_restart_rules(self, lease_expiry_sec):
        """``core.states.RESTART_RULES`` (a dbserver's or a first launcher's start)."""
        return self.request("apply_restart_rules", {"lease_expiry_sec": lease_expiry_sec})

    # -- compaction (balsam db compact) ----------------------------------------------
    def prune_events(self, before, limit=20_000, after_id=0):
        """``{"removed", "last_id"}``: pass ``last_id`` as ``after_id`` to go on."""
        return self.request("prune_events", {"before": before, "limit": limit, "after_id": after_id})

    def delete_finished_jobs(self, ids):
        return self.request("delete_finished_jobs", {"ids": [str(i) for i in ids]})

    def reclaim_space(self, pages):
        """One bounded step of giving free pages back (``db compact``); ``{"freed", "free_pages"}``."""
        return self.request("reclaim_space", {"pages": pages})

    # -- launcher records -----------------------------------------------------------
    def register_launcher(self, owner, host, pid, job_mode, num_nodes, capacity, lease_expiry_sec, wf_filter="",
                          queued_launch_id=None):
        """Record a launcher starting (``core.operations.launchers``); its heartbeats keep it seen."""
        return self.request("register_launcher", {
            "owner": owner, "host": host, "pid": pid, "job_mode": job_mode, "num_nodes": num_nodes,
            "capacity": capacity, "lease_expiry_sec": lease_expiry_sec, "wf_filter": wf_filter,
            "queued_launch_id": queued_launch_id,
        })

    def stop_launcher(self, owner):
        return self.request("stop_launcher", {"owner": owner})
