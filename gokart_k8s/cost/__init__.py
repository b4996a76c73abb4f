"""Cost: node pools from the resource classes, a dated price catalog, and cost before and after a run.

The room's vocabulary:

*machine catalog* (:mod:`.machines`, ``data/machines.csv``)
    machine types with their vCPUs, memory and attached GPUs; *allocatable* by GKE's reservation
    formula, *usable* = allocatable minus the DaemonSets' requests.
*price catalog* (:mod:`.prices`, ``data/prices.csv``)
    hourly prices by cloud, region and item, each row with its source, date and a tag (primary,
    secondary, derived, not found); a price that was not found is absent, never guessed.
*need*, *pool*, *stranded share* (:mod:`.sizing`)
    a class on a capacity type; the cheapest machine whose usable capacity holds it; the share of
    a shared node's price a lone step pays beyond its own pool, which bounds merging.
*generators* (:mod:`.generate`)
    gcloud commands, Terraform, Karpenter YAML, Autopilot and plain notes, luigi.cfg sections.
*estimate* (:mod:`.estimate`)
    a plan's expected cost by the platform's billing model (``plan --cost``).
*billing* (:mod:`.billing`)
    what attempts and nodes of a finished run cost.

Pure functions over plain data; the only I/O is reading the package's CSV files and luigi.cfg
(:mod:`.config`), and the command line (:mod:`.command`).
"""

from __future__ import annotations

from gokart_k8s.cost.billing import AttemptCost, AttemptsCost, PoolNodeCost, price_attempt, price_attempts, price_nodes
from gokart_k8s.cost.config import CostOptions, load_cost_options
from gokart_k8s.cost.machines import Machine, load_machines
from gokart_k8s.cost.prices import PriceCatalog, PriceRow, effective_catalog, shipped_catalog

__all__ = [
    "AttemptCost",
    "AttemptsCost",
    "CostOptions",
    "Machine",
    "PoolNodeCost",
    "PriceCatalog",
    "PriceRow",
    "effective_catalog",
    "load_cost_options",
    "load_machines",
    "price_attempt",
    "price_attempts",
    "price_nodes",
    "shipped_catalog",
]
