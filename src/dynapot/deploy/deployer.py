"""From the stored network picture to a deployed honeyd configuration.

`Deployer` plans one network against the current deployment (so that hosts move as
little as possible), records the plan, and renders and writes the honeyd configuration the
sensor reads. The nmap databases are loaded once: the daemon re-plans every few seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from dynapot.config import BackendSettings, ConfigError, NetworkSettings, PlannerSettings, Settings
from dynapot.db import Database
from dynapot.db.models import utcnow
from dynapot.deploy import review
from dynapot.deploy.health import BackendHealth
from dynapot.deploy.honeyd_export import plan_to_honeyd
from dynapot.files import staged_write, write_atomically  # the sensor reads it after dropping root
from dynapot.honeyd.render import render_config
from dynapot.inventory import current_deployment, network_picture, save_deployment, service_scripts
from dynapot.personality.catalog import MacVendors, PersonalityCatalog
from dynapot.personality.osdb import load_osdb
from dynapot.planner import Plan, Policy, VirtualHost, plan
from dynapot.redirects import Backend, assign_backends


@dataclass(frozen=True, slots=True)
class Deployment:
    plan: Plan  # what is deployed now
    moved: bool  # hosts were added, removed or changed
    held: str | None = None  # hold mode: the digest of the plan waiting for an admin's apply
    held_plan: Plan | None = None  # and that plan


def load_catalog(settings: Settings) -> PersonalityCatalog:
    try:
        mac_vendors = MacVendors.load(settings.nmap_mac_prefixes)
        fingerprints = load_osdb(settings.nmap_os_db)
    except OSError as exc:
        raise ConfigError(f"cannot read the nmap databases: {exc} (is nmap installed?)") from None
    return PersonalityCatalog(fingerprints, mac_vendors)


class Deployer:
    def __init__(
        self,
        db: Database,
        network: NetworkSettings,
        planner: PlannerSettings,
        catalog: PersonalityCatalog,
        *,
        backends: Sequence[BackendSettings] = (),
        health: BackendHealth | None = None,
    ) -> None:
        self.db, self.planner, self.catalog = db, planner, catalog
        self._backend_addresses = tuple(b.address for b in backends)
        self.watch(network)
        self.backends = tuple(Backend(b.name, str(b.address), b.os, b.ports) for b in backends)
        self.health = health or BackendHealth(backends)
        self._written: object = None  # the redirects in the configuration last written

    def watch(self, network: NetworkSettings) -> None:
        """Plan `network` from now on (the daemon's network changed in the settings)."""
        inside = tuple(str(a) for a in self._backend_addresses if a in network.cidr)
        if inside:  # a backend's address is a real machine's: never free for a virtual host
            network = network.model_copy(update={"exclude": (*network.exclude, *inside)})
        self.network = network

    def _with_backends(self, result: Plan) -> Plan:
        """The plan's redirects: its ports the healthy backends of the same OS serve."""
        if not self.backends:
            return result
        return assign_backends(result, self.backends, self.health.healthy(), self.catalog.os_names)

    def plan(self, deployed: tuple[VirtualHost, ...] | None = None) -> Plan:
        """The plan for the network as the database sees it now, relative to what is deployed
        (`deployed`: the deployment already read, else read here)."""
        picture = network_picture(self.db, self.network, self.planner)
        if deployed is None:
            deployed = tuple(current_deployment(self.db, self.network.cidr))
        return self._with_backends(
            plan(
                picture,
                Policy(fill_ratio=self.planner.fill_ratio, service_scripts=service_scripts(self.db)),
                deployed,
                self.catalog,
            )
        )

    def current(self, deployed: tuple[VirtualHost, ...] | None = None) -> Plan:
        """What is deployed now, as a plan that moves nothing (a restart resumes it)."""
        hosts = tuple(current_deployment(self.db, self.network.cidr)) if deployed is None else deployed
        return self._with_backends(Plan(hosts, 0, 0, {}, (), (), ()))

    def write_current(self, config_path: Path) -> Plan:
        result = self.current()
        write_atomically(config_path, self.render(result))
        self._written = result.redirects
        return result

    def deploy(self, config_path: Path, *, force: bool = False, result: Plan | None = None) -> Deployment:
        """Plan (or take `result`, a plan just made by `plan`), record and write the configuration;
        a plan that moves nothing writes nothing (a backend going up or down changes the
        redirects: that is written, the hosts stay)."""
        result = self.plan() if result is None else result
        moved = bool(result.added or result.removed or result.changed)
        if moved or force or not config_path.exists():
            now = utcnow()
            with staged_write(config_path, self.render(result)):
                save_deployment(
                    self.db, result, now=now, gone_before=now - timedelta(seconds=self.planner.hold_off)
                )
            self._written = result.redirects
        elif self.backends and result.redirects != self._written:
            write_atomically(config_path, self.render(result))
            self._written = result.redirects
        return Deployment(result, moved)

    def replan(self, config_path: Path, *, hold: bool = False, force: bool = False) -> Deployment:
        """Plan; deploy what moves hosts (auto), or (`hold`) store it for an admin's review and deploy
        it only once approved and still the same plan (`review`): the plan is made again at apply
        time, so the planner's rules (never an address a real host uses) hold then. Every deployment
        that moves hosts is recorded in the review history. `force` writes the configuration even
        when nothing moves (held: the current plan's)."""
        network = str(self.network.cidr)
        deployed = tuple(current_deployment(self.db, self.network.cidr))  # read once for both
        result = self.plan(deployed)
        if not (result.added or result.removed or result.changed):
            review.settle(self.db, network)
            return self.deploy(config_path, result=result, force=force)
        current = self.current(deployed)
        if hold:
            digest, _ = review.hold(self.db, network, result, current.virtual_hosts)
            if review.approved_digest(self.db, network) != digest:
                stale = self.backends and current.redirects != self._written
                if force or not config_path.exists() or stale:
                    write_atomically(config_path, self.render(current))
                    self._written = current.redirects
                kept = dataclasses.replace(current, real_hosts=result.real_hosts, free_ips=result.free_ips)
                return Deployment(kept, False, digest, result)
        deployment = self.deploy(config_path, result=result, force=force)
        review.record_applied(self.db, network, result, current.virtual_hosts)
        return deployment

    def render(self, result: Plan) -> str:
        return render_config(
            plan_to_honeyd(result, self.planner),
            header=f"dynapot plan for {self.network.cidr}: {len(result.virtual_hosts)} virtual hosts",
        )
