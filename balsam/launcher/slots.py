"""Which nodes of the allocation are free for the next job.

Serial mode packs single-node jobs: a job takes 1/node_packing_count of a
node, and at most ``max_per_node`` jobs share one. MPI mode gives each job
whole nodes.
"""


class SerialSlots:
    def __init__(self, nodes, max_per_node):
        self.nodes = list(nodes)
        self.max_per_node = max_per_node
        self.load = {node.hostname: 0.0 for node in self.nodes}
        self.count = {node.hostname: 0 for node in self.nodes}

    @property
    def capacity(self):
        return len(self.nodes) * self.max_per_node

    def take(self, job):
        share = 1.0 / max(1, job.node_packing_count)
        for node in self.nodes:
            host = node.hostname
            if self.count[host] < self.max_per_node and self.load[host] + share <= 1.0 + 1e-9:
                self.load[host] += share
                self.count[host] += 1
                return [host]
        return None

    def has_room(self):
        """Whether some job could start now (the smallest share fits somewhere)."""
        return any(self.count[h] < self.max_per_node and self.load[h] < 1.0 + 1e-9 for h in self.load)

    def same_share(self, job, running, hosts):
        """Whether ``job`` can take exactly the place of ``running`` (on ``hosts``) when it ends."""
        return max(1, job.node_packing_count) == max(1, running.node_packing_count)

    def give_back(self, job, hosts):
        share = 1.0 / max(1, job.node_packing_count)
        for host in hosts:
            self.load[host] = max(0.0, self.load[host] - share)
            self.count[host] -= 1


class MPISlots:
    def __init__(self, nodes):
        self.nodes = list(nodes)
        self.free = [node.hostname for node in self.nodes]

    @property
    def capacity(self):
        return len(self.nodes)

    def take(self, job):
        if job.num_nodes > len(self.free):
            return None
        hosts, self.free = self.free[: job.num_nodes], self.free[job.num_nodes :]
        return hosts

    def has_room(self):
        return bool(self.free)

    def same_share(self, job, running, hosts):
        """Whether ``job`` can take exactly the place of ``running`` (on ``hosts``) when it ends."""
        return job.num_nodes == len(hosts)

    def give_back(self, job, hosts):
        self.free.extend(hosts)
