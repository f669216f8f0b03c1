"""The compute nodes a launcher may use, read from the batch allocation.

Slurm (``SLURM_JOB_NODELIST``), PBS (``PBS_NODEFILE``), Cobalt
(``COBALT_NODEFILE`` or ``COBALT_PARTNAME``); outside an allocation, this
machine with its cores. Pure Python: no Django, no scheduler commands.
"""

import os
import re
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Node:
    hostname: str
    cores: int


def expand_slurm_nodelist(text):
    """``"nid[001-003,007],login1"`` -> ``["nid001", "nid002", "nid003", "nid007", "login1"]``."""
    names = []
    for group in re.findall(r"[^,\[]+(?:\[[^\]]*\])?[^,]*", text):
        match = re.fullmatch(r"([^\[]*)\[([^\]]*)\](.*)", group)
        if not match:
            names.append(group)
            continue
        prefix, ranges, suffix = match.groups()
        for part in ranges.split(","):
            if "-" in part:
                low, high = part.split("-", 1)
                width = len(low)
                names.extend(f"{prefix}{n:0{width}d}{suffix}" for n in range(int(low), int(high) + 1))
            else:
                names.append(f"{prefix}{part}{suffix}")
    return names


def expand_cobalt_partname(text):
    """``"1001-1003,1030"`` -> ``["1001", "1002", "1003", "1030"]`` (Cray node ids)."""
    names = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            low, high = part.split("-", 1)
            names.extend(str(n) for n in range(int(low), int(high) + 1))
        elif part:
            names.append(part)
    return names


def _unique_lines(path):
    seen = []
    with open(path) as f:
        for line in f:
            name = line.strip()
            if name and name not in seen:  # PBS lists a node once per core
                seen.append(name)
    return seen


def detect_nodes(environ=None, cores_per_node=None):
    """The allocation's nodes, or this machine when there is no allocation."""
    environ = os.environ if environ is None else environ
    cores = cores_per_node or os.cpu_count() or 1
    if environ.get("SLURM_JOB_NODELIST"):
        names = expand_slurm_nodelist(environ["SLURM_JOB_NODELIST"])
    elif environ.get("PBS_NODEFILE"):
        names = _unique_lines(environ["PBS_NODEFILE"])
    elif environ.get("COBALT_NODEFILE") and os.path.exists(environ["COBALT_NODEFILE"]):
        names = _unique_lines(environ["COBALT_NODEFILE"])
    elif environ.get("COBALT_PARTNAME"):
        names = expand_cobalt_partname(environ["COBALT_PARTNAME"])
    else:
        names = [socket.gethostname()]
    return [Node(name, cores) for name in names]
