"""The daemon's loops: sniff, scan, sweep, re-plan and apply, correlate and alert, roll up, expire.

Everything blocking (nmap, the planner, database writes) runs in worker threads so that
the sniffer keeps up; every loop is paced by the settings and ends when `stop` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import pwd
import stat
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from dynapot.analysis.alerts import Alerter, Channel
from dynapot.analysis.compromise import CompromiseWatch
from dynapot.analysis.correlate import Correlator
from dynapot.analysis.findings import Finding, finding_ids, store_findings
from dynapot.analysis.report.rollup import refresh_rollup
from dynapot.analysis.stored import events_after
from dynapot.collector import Collector
from dynapot.config import ConfigError, NetworkSettings, Settings, load_settings
from dynapot.daemon import settings_requests
from dynapot.daemon.liveness import arp_requests, sweep
from dynapot.daemon.sensor_process import SensorProcess
from dynapot.daemon.settings_access import others_may_write
from dynapot.daemon.web_process import WebProcess
from dynapot.db import Database
from dynapot.db.models import HoneypotEvent, Host
from dynapot.deploy import Deployer, Deployment, load_catalog
from dynapot.discovery.active import ScanCancel, ScanCancelledError, ScanResult, run_scan, scan_options
from dynapot.discovery.p0f import DEFAULT_DATABASE, P0fDatabase, P0fMatcher
from dynapot.discovery.passive import PassiveObserver
from dynapot.events import Kind
from dynapot.files import write_atomically
from dynapot.inventory import expire, record_observations, release_outside
from dynapot.planner import Plan
from dynapot.processes import untrusted_program
from dynapot.sensor.rawsock import RawSocket, interface_addresses

log = logging.getLogger("dynapot.daemon")
ETH_P_ARP = b"\x08\x06"
EVENT_BATCH = 20_000  # events read per correlation round
STATUS_INTERVAL = 2.0
SETTINGS_POLL = 0.3  # seconds between looks for the web child's settings changes (the page waits)
LOG_CAP_INTERVAL = 30.0  # seconds between looks at the logs' sizes (a flood fills MBs, not GBs, in that time)
FLUSH_INTERVAL = 0.25  # seconds between database writes of what the sniffer learned


@dataclass(slots=True)
class DaemonStatus:
    started: float = field(default_factory=time.time)
    mode: str = ""
    network: str = ""
    last_scan: float | None = None
    last_scan_hosts: int | None = None
    last_replan: float | None = None
    last_apply: float | None = None
    replans: int = 0
    virtual_hosts: int = 0
    real_hosts: int = 0
    free_addresses: int = 0
    events_correlated: int = 0
    findings: int = 0
    last_event_id: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    frames_sniffed: int = 0
    errors: list[str] = field(default_factory=list)
    held: str | None = None  # the digest of the plan held for review (planner.apply = "hold")
    # virtual address -> TCP port (as text) -> the backend it is redirected to, as deployed now
    redirects: dict[str, dict[str, str]] = field(default_factory=dict)
    # The last active scan stopped before its end: why, when, how long its nmaps took to end,
    # how many hosts' results were kept (whole ones only) and how many dropped.
    scan_stopped: dict[str, Any] | None = None


def check_settings(settings: Settings) -> None:
    """Raise ConfigError for settings the daemon cannot run with (before anything is opened)."""
    if not settings.daemon.interface:
        raise ConfigError("daemon.interface: required: the interface to watch and serve")
    if len(settings.networks) != 1:
        raise ConfigError(
            f"networks: `dynapot run` looks after exactly one network (one [[networks]]), "
            f"not {len(settings.networks)}"
        )


def check_identities(settings: Settings, settings_path: Path | None) -> None:
    """Raise ConfigError when a settings file another account may write (the web account, once
    given it: `dynapot admin settings-access --grant`) would have a child run as root: that
    account would have root at the next start."""
    if settings_path is None or (writer := others_may_write(settings_path)) is None:
        return
    accounts = [("daemon.sensor_user", settings.daemon.sensor_user)]
    if settings.web.enabled:
        accounts.append(("web.user", settings.web.user))
    for name, user in accounts:
        with contextlib.suppress(KeyError):
            if pwd.getpwnam(user).pw_uid == 0:
                raise ConfigError(
                    f"{settings.describe(name)}: {user} is root, and {writer}: whoever may write the "
                    "settings file would choose what runs as root (name an unprivileged account)"
                )


class Daemon:
    def __init__(self, settings: Settings, db: Database, *, settings_path: Path | None = None) -> None:
        check_settings(settings)
        check_identities(settings, settings_path)
        daemon = settings.daemon
        self.settings, self.db = settings, db
        self.interface = daemon.interface
        self.mode = settings.discovery.mode
        self.state_dir = daemon.state_dir
        _state_folder(self.state_dir)
        self.config_path = self.state_dir / "honeyd.conf"
        self.own_addresses = interface_addresses(self.interface)
        self.network = self._watched(settings.networks[0])
        self.deployer = Deployer(
            db, self.network, settings.planner, load_catalog(settings), backends=settings.backends
        )
        self.sensor = SensorProcess(
            interface=self.interface,
            config_path=self.config_path,
            state_dir=self.state_dir,
            # Its own role where one is set: on PostgreSQL one that may only insert events.
            db_url=daemon.sensor_database_url or settings.database_url,
            user=daemon.sensor_user,
            settings_path=settings_path,
        )
        self.alerter = Alerter(settings.alerts, db)
        self.correlator = Correlator(settings.correlation)
        self.compromise = CompromiseWatch(settings.correlation.compromise)  # from the Sebek rows
        # The Sebek collector ([collector] enabled): records from high-interaction honeypots.
        self.collector = Collector(db, settings.collector) if settings.collector.enabled else None
        # The admin interface ([web] enabled): a child that drops root before it serves anything.
        self.web = (
            WebProcess(settings, state_dir=self.state_dir, settings_path=settings_path)
            if settings.web.enabled
            else None
        )
        self.status = DaemonStatus(mode=self.mode, network=str(self.network.cidr))
        self.virtual: dict[str, str] = {}  # deployed address -> MAC
        self._virtual_macs: set[bytes] = set()
        self._replan = asyncio.Event()
        self._raw: RawSocket | None = None
        self._observer: PassiveObserver | None = None
        self._cursor_path = self.state_dir / "correlator.json"
        self._resumed = False
        self._found: deque[tuple[Finding, int | None]] = deque()  # from the worker thread to the loop
        self._notices: deque[tuple[str, str, str]] = deque()  # storage budgets reached: key, title, body
        self.settings_path = settings_path
        self._settings_mtime = _mtime(settings_path)
        self._stop: asyncio.Event | None = None  # set while running: the mode's loops are started with it
        # The scan and liveness loops, in active and hybrid mode.
        self._discovery: list[asyncio.Task[None]] = []
        self._scan_end_reason: str | None = None  # why the scan loop is being cancelled
        # Cancelled discovery loops, and stopped scans whose nmaps are ending: `scans_ended` waits.
        self._scan_endings: set[asyncio.Task[None]] = set()
        self._redeploy = False  # the network changed: write a configuration at the next re-plan

    def _watched(self, configured: NetworkSettings) -> NetworkSettings:
        """The network as the daemon looks after it: the sensor's own address is never a honeypot,
        whatever the database says."""
        own = tuple(a for a in self.own_addresses if ipaddress.IPv4Address(a) in configured.cidr)
        return NetworkSettings(
            cidr=configured.cidr, gateway=configured.gateway, exclude=(*configured.exclude, *own)
        )

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        if self.collector is not None:  # first: an address it cannot listen on stops everything
            try:
                await self.collector.start()
            except OSError as exc:
                raise ConfigError(
                    f"{self.settings.describe('collector.listen')}: cannot listen: {exc.strerror}"
                ) from None
        self._raw = RawSocket(self.interface)
        self._observer = PassiveObserver(_p0f())
        self.status.last_event_id = self._load_cursor()
        # Resume what is deployed; the first new plan waits for a full picture (see _may_plan).
        self._deployed(await asyncio.to_thread(self.deployer.write_current, self.config_path))
        self._resumed = bool(self.virtual)
        self.sensor.start()
        if self.web is not None:
            self.web.start()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._raw.fileno(), self._on_frames)
        tasks = [
            asyncio.create_task(self._flush_loop(stop), name="sniffer"),
            asyncio.create_task(self._replan_loop(stop), name="replan"),
            asyncio.create_task(self._correlate_loop(stop), name="correlate"),
            asyncio.create_task(self._expire_loop(stop), name="expire"),
            asyncio.create_task(self._rollup_loop(stop), name="rollup"),
            asyncio.create_task(self._status_loop(stop), name="status"),
            asyncio.create_task(self._log_cap_loop(stop), name="log-cap"),
            asyncio.create_task(self._settings_request_loop(stop), name="settings-requests"),
            asyncio.create_task(self.alerter.run(stop), name="alerts"),
        ]
        if self.collector is not None:
            tasks.append(asyncio.create_task(self.collector.run(stop), name="collector"))
        self._stop = stop
        self._apply_mode()
        log.info("running: %s mode on %s (%s)", self.mode, self.interface, self.network.cidr)
        try:
            await stop.wait()
        finally:
            loop.remove_reader(self._raw.fileno())
            tasks += self._discovery
            self._stop, self._discovery = None, []
            self._scan_end_reason = "the daemon stops"
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.scans_ended()
            await asyncio.to_thread(self.sensor.stop)
            if self.web is not None:
                await asyncio.to_thread(self.web.stop)
            self._raw.close()
            self._write_status()

    def _apply_mode(self) -> None:
        """Run the scan and liveness loops in active and hybrid mode, stop them in passive mode
        (the sniffer reads `mode` on every frame). Before `run` there is nothing to start."""
        stop = self._stop
        if stop is None:
            return
        scanning = self.mode in ("active", "hybrid")
        if scanning and not self._discovery:
            self._discovery = [asyncio.create_task(self._scan_loop(stop), name="scan")]
            if self.settings.daemon.liveness_interval > 0:
                self._discovery.append(asyncio.create_task(self._liveness_loop(stop), name="liveness"))
        elif not scanning and self._discovery:
            self._stop_discovery(f"the discovery mode turned {self.mode}")

    def _stop_discovery(self, reason: str) -> None:
        """Cancel the scan and liveness loops; a scan under way has its nmaps ended (`_end_scan`)."""
        self._scan_end_reason = reason
        for task in self._discovery:
            task.cancel()
            self._scan_endings.add(task)  # until it has handed its nmaps to `_end_scan`
            task.add_done_callback(self._scan_endings.discard)
        self._discovery = []

    async def scans_ended(self) -> None:
        """Wait until the nmaps of every stopped scan are ended and reaped (bounded by the kill grace)."""
        while self._scan_endings:
            await asyncio.gather(*self._scan_endings, return_exceptions=True)

    async def _every(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep `seconds` unless stopped first; True means go on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
        return not stop.is_set()

    def _error(self, what: str, exc: BaseException) -> None:
        log.exception("%s failed", what)
        self.status.errors = [*self.status.errors[-9:], f"{time.strftime('%H:%M:%S')} {what}: {exc}"]

    # ------------------------------------------------------------------ discovery

    def _on_frames(self) -> None:
        assert self._raw is not None and self._observer is not None
        own, virtual, passive = self._raw.mac, self._virtual_macs, self.mode != "active"
        feed = self._observer.feed
        now = time.time()
        for frame, checksums_ok, _, _ in self._raw.frames():
            source = frame[6:12]
            if source == own or source in virtual:
                continue  # our own frames and the sensor's say nothing about the real network
            if not passive and frame[12:14] != ETH_P_ARP:
                continue  # active mode listens to ARP only: liveness and address conflicts
            self.status.frames_sniffed += 1
            try:
                feed(frame, now, checksums_ok)
            except Exception as exc:  # a frame must never stop discovery
                self._error("passive observer", exc)

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        assert self._observer is not None
        # A few times a second: a machine taking a honeypot's address should be re-planned for soon.
        while await self._every(stop, FLUSH_INTERVAL):
            observations = [o for o in self._observer.observations(time.time()) if self._is_real(o.ip, o.mac)]
            if not observations:
                continue
            try:
                stats = await asyncio.to_thread(
                    record_observations, self.db, observations, self.settings.discovery.fusion
                )
            except Exception as exc:
                self._error("recording observations", exc)
                continue
            if stats.hosts_added or stats.reclaimed or any(o.os or o.ports for o in observations):
                self._replan.set()

    def _is_real(self, ip: str, mac: str | None) -> bool:
        ours = self.virtual.get(ip)
        return ours is None or (mac is not None and mac.lower() != ours.lower())

    async def _scan_loop(self, stop: asyncio.Event) -> None:
        while True:
            # Read each time: N, D and polite mode may change in the settings file meanwhile.
            options = scan_options(
                self.settings.discovery.active, interface=self.interface, virtual=dict(self.virtual)
            )
            try:
                if os.geteuid() == 0 and (problem := untrusted_program(options.nmap_path)) is not None:
                    raise ConfigError(f"{self.settings.describe('discovery.active.nmap_path')}: {problem}")
                result = await self._scan(str(self.network.cidr), options)
                stored = await self._record_scan(result.observations)
                self.status.last_scan, self.status.last_scan_hosts = time.time(), stored
                self._replan.set()
            except Exception as exc:
                self._error("active scan", exc)
            if not await self._every(stop, self.settings.daemon.scan_interval):
                return

    async def _scan(self, target: str, options: Any) -> ScanResult:
        """One run_scan in a worker thread. Cancelled (passive mode, a new network, the daemon
        stopping), it ends the scan's nmaps in a task of its own that outlives this one."""
        cancel = ScanCancel()
        work = asyncio.ensure_future(asyncio.to_thread(run_scan, [target], options, cancel=cancel))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            reason = self._scan_end_reason or "cancelled"
            ending = asyncio.create_task(self._end_scan(cancel, work, target, reason), name="scan-end")
            self._scan_endings.add(ending)
            ending.add_done_callback(self._scan_endings.discard)
            raise

    async def _end_scan(
        self, cancel: ScanCancel, work: asyncio.Future[ScanResult], target: str, reason: str
    ) -> None:
        """End a cancelled scan's nmaps (SIGTERM, SIGKILL after the grace, reaped) and settle what
        it found: the hosts whose nmap ran to its end are stored, each a whole result, unless the
        scan's network is no longer the one watched (then nothing is: those targets are unwanted);
        a killed host's half-done result never is. Logged and shown by `dynapot status`."""
        started = time.monotonic()
        signalled = await asyncio.to_thread(cancel.cancel, reason)
        try:
            await work
        except ScanCancelledError as exc:
            partial, unscanned = exc.partial.observations, len(exc.unscanned)
        except Exception as exc:  # it failed on its own meanwhile: nothing to keep
            partial, unscanned = (), 0
            self._error("active scan", exc)
        else:  # it finished just before the signal: a whole scan
            partial, unscanned = work.result().observations, 0
        seconds = round(time.monotonic() - started, 3)
        kept = 0
        if target == str(self.network.cidr) and partial:
            try:
                kept = await self._record_scan(partial)
            except Exception as exc:
                self._error("recording a stopped scan", exc)
            else:
                self._replan.set()
        self.status.scan_stopped = {
            "reason": reason,
            "time": time.time(),
            "network": target,
            "nmaps_ended": signalled,
            "seconds": seconds,
            "hosts_kept": kept,
            "hosts_dropped": unscanned + (0 if kept else len(partial)),
        }
        log.info(
            "active scan of %s stopped (%s): %d nmap(s) ended in %.2f s; %d host(s) scanned to the end "
            "kept, %d dropped",
            target,
            reason,
            signalled,
            seconds,
            kept,
            self.status.scan_stopped["hosts_dropped"],
        )

    async def _record_scan(self, observations: Any) -> int:
        """Store what a scan found (never the daemon's own addresses); how many were stored."""
        mine = [o for o in observations if o.ip not in self.own_addresses]
        await asyncio.to_thread(record_observations, self.db, mine, self.settings.discovery.fusion)
        return len(mine)

    async def _liveness_loop(self, stop: asyncio.Event) -> None:
        """ARP-ask every real host we know and every free address nobody holds."""
        assert self._raw is not None
        daemon = self.settings.daemon
        while await self._every(stop, daemon.liveness_interval):
            try:
                targets = await asyncio.to_thread(self._liveness_targets)
                frames = arp_requests(self._raw.mac, self._own_ip(), targets)
                await sweep(self._raw.send, frames, daemon.liveness_rate)
            except Exception as exc:
                self._error("liveness sweep", exc)

    def _own_ip(self) -> str:
        inside = [a for a in self.own_addresses if ipaddress.IPv4Address(a) in self.network.cidr]
        if not inside:
            raise ConfigError(f"{self.interface} has no address in {self.network.cidr} to ask ARP from")
        return inside[0]

    def _liveness_targets(self) -> list[str]:
        cidr = self.network.cidr
        with self.db.session() as session:
            real = [
                ip
                for ip in session.scalars(select(Host.ip).where(Host.is_virtual.is_(False)))
                if ipaddress.IPv4Address(ip) in cidr
            ]
        own = set(self.own_addresses)
        return [ip for ip in real if ip not in own and ip not in self.virtual]

    # ------------------------------------------------------------------ planning

    async def _replan_loop(self, stop: asyncio.Event) -> None:
        interval = self.settings.daemon.replan_interval
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._replan.wait(), interval)
            self._replan.clear()
            self.sensor.check()
            self.reload_policy()
            if not self._may_plan():
                continue
            force, self._redeploy = self._redeploy, False
            try:
                if force:  # a new network: the virtual hosts outside it are ours no more
                    await asyncio.to_thread(release_outside, self.db, self.network.cidr)
                deployment = await asyncio.to_thread(self.replan_once, force)
            except Exception as exc:
                self._redeploy = self._redeploy or force
                self._error("re-plan", exc)
                continue
            self.status.last_replan = time.time()
            if deployment.moved or force:
                self._deployed(deployment.plan)
                self.sensor.reload()
                self.status.replans += 1
                self.status.last_apply = time.time()
                plan = deployment.plan
                log.info("re-planned: +%d -%d ~%d (%d virtual hosts)", *_moves(plan), len(plan.virtual_hosts))
            else:
                self._counts(deployment.plan)

    def replan_once(self, force: bool = False) -> Deployment:
        """Plan and deploy (auto mode), or hold the plan for an admin (hold mode). A worker thread's.
        `force`: write the configuration even if no host moves (the network changed)."""
        hold = self.settings.planner.apply == "hold"
        deployment = self.deployer.replan(self.config_path, hold=hold, force=force)
        if deployment.held and deployment.held != self.status.held:
            log.info(
                "holding a new plan for review: +%d -%d ~%d (%s)",
                *_moves(deployment.held_plan),
                deployment.held[:12],
            )
        elif self.status.held and deployment.moved:
            log.info("deployed a new plan; the one held (%s) is done", self.status.held[:12])
        self.status.held = deployment.held
        return deployment

    def reload_policy(self, *, force: bool = False) -> bool:
        """Take the admin's new planner, alert, correlation, discovery (mode; N, D, polite) and
        expiry policy, network and exclusions from the settings file.

        Read when the file changes (or on SIGHUP with `force`); a file that does not validate
        (or names other than one network) is logged and the running policy stays. A new mode
        starts or stops the scan loops; a new network is scanned from the next round, and the
        next re-plan releases the virtual hosts on excluded addresses or outside the network.
        Database and daemon settings need a restart: they decide what the daemon is.
        """
        if self.settings_path is None:
            return False
        mtime = _mtime(self.settings_path)
        if not force and mtime == self._settings_mtime:
            return False
        self._settings_mtime = mtime
        try:
            new = load_settings(self.settings_path)
            channels = [Channel(url) for url in new.alerts.urls]  # an unknown URL refuses it all
            check_settings(new.model_copy(update={"daemon": self.settings.daemon}))
        except ValueError as exc:
            self._error("settings reload (the running policy stays)", exc)
            return False
        changed = []
        if new.planner != self.settings.planner:
            self.deployer.planner = new.planner
            changed.append("planner")
        if new.alerts != self.settings.alerts:
            self.alerter.reconfigure(new.alerts, channels)
            changed.append("alerts")
        if new.correlation != self.settings.correlation:
            # New thresholds, new correlator: attacks in progress are counted afresh.
            self.correlator = Correlator(new.correlation)
            self.compromise.rule = new.correlation.compromise
            changed.append("correlation")
        running = self.settings.discovery.active.nmap_path
        if new.discovery.active.nmap_path != running:
            # The program root runs is not policy: a file the web account may write must not
            # choose it. It takes a restart (and is checked to be root's: untrusted_program).
            log.warning(
                "discovery.active.nmap_path: a new program takes a restart; still running %s", running
            )
            active = new.discovery.active.model_copy(update={"nmap_path": running})
            new = new.model_copy(update={"discovery": new.discovery.model_copy(update={"active": active})})
        if new.discovery.active != self.settings.discovery.active:
            changed.append("discovery.active")  # the next scan uses it
        if new.discovery.fusion != self.settings.discovery.fusion:
            changed.append("discovery.fusion")  # the next observations recorded use it
        if new.expiry != self.settings.expiry:
            changed.append("expiry")  # the next expiry run uses it
        network = self._watched(new.networks[0])
        if network != self.network:
            if network.cidr != self.network.cidr and self._discovery:
                # A scan of the old network is unwanted: end it; a new one starts below.
                # (New exclusions only say where honeypots go, not what is scanned.)
                self._stop_discovery(f"the network changed to {network.cidr}")
            self.network = network  # the next scan and plan use it
            self.deployer.watch(network)
            self.status.network = str(network.cidr)
            self._redeploy = True  # hosts outside it are dropped from the configuration written
            changed.append("networks")
        if new.discovery.mode != self.mode:
            self.mode = self.status.mode = new.discovery.mode
            changed.append("discovery.mode")
        self._apply_mode()  # a new mode starts or stops the scans; a new network starts a new one
        self.settings = self.settings.model_copy(
            update={
                "planner": new.planner,
                "alerts": new.alerts,
                "correlation": new.correlation,
                "discovery": new.discovery,
                "expiry": new.expiry,
                "networks": new.networks,
            }
        )
        if changed:
            log.info("new policy from %s: %s", self.settings_path, ", ".join(changed))
            self._replan.set()
        return bool(changed)

    def _may_plan(self) -> bool:
        """Plan only on a full picture: after the first scan, or the passive warm-up, or a restart."""
        if self._resumed or self.status.last_scan is not None:
            return True  # (a scan done before the mode became passive is a full picture too)
        if self.mode == "passive":
            return time.time() - self.status.started >= self.settings.daemon.warmup
        return False

    def _deployed(self, plan: Any) -> None:
        self.virtual = {vh.ip: vh.mac for vh in plan.virtual_hosts}
        self._virtual_macs = {bytes.fromhex(mac.replace(":", "")) for mac in self.virtual.values() if mac}
        self._counts(plan)

    def _counts(self, plan: Any) -> None:
        self.status.virtual_hosts = len(plan.virtual_hosts)
        self.status.real_hosts = plan.real_hosts
        self.status.free_addresses = plan.free_ips
        self.status.redirects = {
            ip: {str(p): b for p, b in ports.items()} for ip, ports in plan.redirects.items()
        }

    # ------------------------------------------------------------------ correlation and alerts

    async def _correlate_loop(self, stop: asyncio.Event) -> None:
        while await self._every(stop, self.settings.daemon.correlate_interval):
            try:
                full = True
                while full:  # a full batch: there may be more waiting
                    full = await asyncio.to_thread(self.correlate_once)
                    self._alert_found()
            except Exception as exc:
                self._error("correlation", exc)

    def _alert_found(self) -> None:
        """Hand new findings to the alerter, in the event loop's thread (its queue is asyncio's)."""
        while self._found:
            finding, finding_id = self._found.popleft()
            verdict = self.alerter.consider(finding, finding_id)
            log.info("finding %s (%s): %s -> %s", finding.kind, finding.risk, finding.summary, verdict)
        while self._notices:
            key, title, body = self._notices.popleft()
            log.warning("%s -> %s", title, self.alerter.notice(key, title, body))

    def correlate_once(self) -> bool:
        """Correlate the next batch of stored events; True when the batch was full."""
        rows = events_after(self.db, self.status.last_event_id, EVENT_BATCH)
        found: list[Finding] = []
        for row in rows:
            found += self.correlator.feed(row)
            if row.kind == Kind.STORAGE_FULL:
                self._notices.append(_storage_notice(row.data))
        if len(rows) < EVENT_BATCH:
            # Caught up: the clock may close idle attacks. Mid-backlog it would close live ones.
            self.correlator.expire(time.time())
        updates = self.correlator.updates()
        if updates:
            store_findings(self.db, updates)
        if found:
            ids = finding_ids(self.db, (f.key for f in found))
            self._found.extend((finding, ids.get(finding.key)) for finding in found)
            self.status.findings += len(found)
        self._compromises()
        if rows:
            self.status.last_event_id = rows[-1].id
            self.status.events_correlated += len(rows)
            self._save_cursor(self.status.last_event_id)
        return len(rows) == EVENT_BATCH

    def _compromises(self) -> None:
        """Sessions with commands typed on a high-interaction honeypot: stored, new ones alerted."""
        found = self.compromise.after(self.db)
        if not found:
            return
        known = finding_ids(self.db, (f.key for f in found))
        store_findings(self.db, found)
        ids = finding_ids(self.db, (f.key for f in found))
        new = [f for f in found if f.key not in known]
        self._found.extend((finding, ids.get(finding.key)) for finding in new)
        self.status.findings += len(new)

    def _load_cursor(self) -> int:
        """Where correlation stopped before a restart; new events only after a fresh start."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return int(json.loads(self._cursor_path.read_text())["last_event_id"])
        with self.db.engine.connect() as connection:
            return connection.scalar(select(HoneypotEvent.id).order_by(HoneypotEvent.id.desc()).limit(1)) or 0

    def _save_cursor(self, last_id: int) -> None:
        write_atomically(self._cursor_path, json.dumps({"last_event_id": last_id}))

    # ------------------------------------------------------------------ upkeep

    async def _rollup_loop(self, stop: asyncio.Event) -> None:
        """Sum the new events into the hourly roll-up the reports read (bounded transactions)."""
        while await self._every(stop, self.settings.daemon.correlate_interval):
            try:
                await asyncio.to_thread(refresh_rollup, self.db)
            except Exception as exc:
                self._error("roll-up", exc)

    async def _expire_loop(self, stop: asyncio.Event) -> None:
        while True:
            try:
                counts = await asyncio.to_thread(expire, self.db, self.settings.expiry)
                if any(counts.values()):
                    log.info("expired: %s", counts)
            except Exception as exc:
                self._error("expiry", exc)
            if not await self._every(stop, self.settings.daemon.expire_interval):
                return

    async def _settings_request_loop(self, stop: asyncio.Event) -> None:
        """Write the settings changes the web child hands over (`settings_requests`), as root,
        and take them up at once (the web child only reads the settings file)."""
        if self.web is None or self.settings_path is None:
            return
        while await self._every(stop, SETTINGS_POLL):
            try:
                answered = await asyncio.to_thread(settings_requests.settle, self.db, self.settings_path)
            except Exception as exc:
                self._error("settings change", exc)
                continue
            if answered:
                log.info("settings: %d change(s) from the web interface answered", answered)
                self.reload_policy()

    async def _log_cap_loop(self, stop: asyncio.Event) -> None:
        """Keep the state folder's logs under `daemon.log_max_mb` each (`logfiles.cap`)."""
        while await self._every(stop, LOG_CAP_INTERVAL):
            limit = int(self.settings.daemon.log_max_mb * 1024 * 1024)
            try:
                cut = await asyncio.to_thread(self.sensor.cap_logs, limit)
                if self.web is not None:
                    cut += await asyncio.to_thread(self.web.cap_logs, limit)
            except OSError as exc:
                self._error("log cut", exc)
                continue
            for path in cut:
                log.info("%s reached %g MB: cut, the part before kept as %s.1", path, limit / 2**20, path)

    async def _status_loop(self, stop: asyncio.Event) -> None:
        while await self._every(stop, STATUS_INTERVAL):
            self.sensor.check()
            if self.web is not None:
                self.web.check()
            self._write_status()

    def _write_status(self) -> None:
        self.status.alerts = dict(self.alerter.counts)
        data = {
            **{name: getattr(self.status, name) for name in DaemonStatus.__slots__},
            "time": time.time(),
            "sensor_running": self.sensor.running,
            "sensor_starts": self.sensor.starts,
            "collector": self.collector.status() if self.collector is not None else None,
            "web": self.web.status() if self.web is not None else None,
        }
        try:
            write_atomically(self.state_dir / "daemon-status.json", json.dumps(data))
        except OSError as exc:
            log.warning("cannot write status: %s", exc)


def _moves(plan: Plan) -> tuple[int, int, int]:
    return len(plan.added), len(plan.removed), len(plan.changed)


def _storage_notice(data: Any) -> tuple[str, str, str]:
    """The alert for a storage budget the sensor reached: its key, title and body."""
    data = data if isinstance(data, dict) else {}
    store = str(data.get("store", "storage"))[:32]
    used, budget = data.get("used"), data.get("budget")
    what = (
        "uploads are hashed and reported, not kept"
        if store == "spool"
        else "payloads and noise are counted, not stored; past it by a tenth nothing but the sensor's news"
    )
    body = (
        f"The sensor's {store} budget is reached ({used} of {budget} bytes): {what}. "
        "`dynapot status` counts what was not stored."
    )
    return f"storage-full:{store}", f"dynapot: {store} budget reached", body


def _state_folder(path: Path) -> None:
    """The daemon's state folder: made 0755 when missing (the unprivileged sensor re-reads its
    configuration there); one that exists is left as it is, never chmodded."""
    try:
        path.mkdir(parents=True, mode=0o755)
    except FileExistsError:
        if not os.stat(path).st_mode & stat.S_IXOTH:
            log.warning(
                "%s is closed to other users: the sensor, once unprivileged, cannot re-read its "
                "configuration there (it is left as it is; `chmod o+x` opens it)",
                path,
            )
        return
    os.chmod(path, 0o755)  # noqa: S103 - the folder just made, for the sensor to read in


def _mtime(path: Path | None) -> float | None:
    try:
        return path.stat().st_mtime if path is not None else None
    except OSError:
        return None


def _p0f() -> P0fMatcher | None:
    try:
        return P0fMatcher(P0fDatabase.load(DEFAULT_DATABASE))
    except Exception as exc:  # passive OS guesses are a bonus; discovery goes on without them
        log.warning("p0f signatures not loaded: %s", exc)
        return None
