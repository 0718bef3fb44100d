# dynapot: the two commands a new Debian machine needs, as root:
#   make run    install everything, then run the main job (the lab demo unless NETWORK=CIDR is given)
#   make test   install everything, then lint and run the whole test suite (SQLite and PostgreSQL)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := nmap p0f iproute2 iputils-ping ethtool procps postgresql openssh-server vsftpd busybox-static tcpdump \
                postfix apache2 nginx mariadb-server \
                curl ftp telnet sshpass mariadb-client snmp apache2-utils smbclient \
                python3-venv python3-dev gcc make chromium tshark bpftrace
NETWORK ?=
# The account the sensor drops root to: a system user of its own (no login shell, no home).
SENSOR_USER := dynapot
WEB_USER := dynapot-web
DATA_DIR := /var/lib/dynapot
# The settings file `dynapot run` reads by default, which the web interface's settings page saves.
SETTINGS_FILE := /etc/dynapot/dynapot.toml

.PHONY: setup system-deps system-user settings-access run demo test lint bench abuse realism clean

setup: system-deps system-user $(VENV)/.installed settings-access

# Debian packages: only those missing are installed, so a prepared machine is left alone.
system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The sensor's account and the web interface's (apart, so that a compromised sensor cannot reach
# the web process), made once; the sensor's folders are made for it (uploads, SSH host keys), and
# those an older set-up left to nobody (the former default) are handed over. Nothing else is touched.
system-user:
	@if [ "$$(id -u)" != 0 ]; then echo "not root: the system accounts $(SENSOR_USER), $(WEB_USER) are not made"; exit 0; fi; \
	if ! getent passwd $(SENSOR_USER) >/dev/null; then \
	    echo "making the system account $(SENSOR_USER) (no login, no home) for the sensor"; \
	    useradd --system --user-group --no-create-home --home-dir /nonexistent \
	        --shell /usr/sbin/nologin --comment "dynapot sensor" $(SENSOR_USER); \
	fi; \
	if ! getent passwd $(WEB_USER) >/dev/null; then \
	    echo "making the system account $(WEB_USER) (no login, no home) for the web interface"; \
	    useradd --system --user-group --no-create-home --home-dir /nonexistent \
	        --shell /usr/sbin/nologin --comment "dynapot web interface" $(WEB_USER); \
	fi; \
	[ -d $(DATA_DIR) ] || install -d -m 0755 $(DATA_DIR); \
	for folder in uploads ssh-keys; do \
	    path=$(DATA_DIR)/$$folder; \
	    if [ ! -e $$path ]; then install -d -o $(SENSOR_USER) -g $(SENSOR_USER) -m 0700 $$path; \
	    elif [ "$$(stat -c %U $$path)" = nobody ]; then chown -R $(SENSOR_USER):$(SENSOR_USER) $$path; fi; \
	done

# The web interface reads the settings file as its own account (the daemon writes it as root): when
# the file is there, it goes to that account's group (g+r, never g+w), or the reason it cannot is printed.
settings-access: $(VENV)/.installed
	@if [ "$$(id -u)" = 0 ] && [ -f $(SETTINGS_FILE) ]; then \
	    $(BIN)/dynapot admin settings-access --config $(SETTINGS_FILE) --grant \
	        || echo "the web interface cannot read $(SETTINGS_FILE) (see above); the rest of the set-up is done"; \
	fi

$(VENV)/.installed: pyproject.toml setup.py src/dynapot/_fastpath.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: setup
ifeq ($(strip $(NETWORK)),)
	$(BIN)/dynapot demo
else
	$(BIN)/dynapot scan $(NETWORK)
	$(BIN)/dynapot plan --network $(NETWORK)
	$(BIN)/dynapot honeyd-config --network $(NETWORK) --apply -o honeyd.conf
endif

demo: run

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python bench/bench_planner.py
	$(BIN)/python bench/bench_scan_plan.py
	$(BIN)/python bench/bench_p0f.py
	$(BIN)/python bench/bench_personality.py
	$(BIN)/python bench/bench_netstack.py
	$(BIN)/python bench/bench_sensor.py
	$(BIN)/python bench/bench_correlate.py
	$(BIN)/python bench/bench_services.py
	$(BIN)/python bench/bench_daemon.py
	$(BIN)/python bench/bench_scan_stop.py
	$(BIN)/python bench/bench_redirect.py --lab
	$(BIN)/python bench/bench_sebek.py
	$(BIN)/python bench/bench_agent.py
	$(BIN)/python bench/bench_web.py
	$(BIN)/python bench/bench_web_feed.py
	$(BIN)/python bench/bench_web_plan.py
	$(BIN)/python bench/bench_shell.py

# The abuse suite: each script builds a lab, attacks the sensor and prints one line per check.
abuse: setup
	$(BIN)/python bench/abuse_memory.py
	$(BIN)/python bench/abuse_claims.py
	$(BIN)/python bench/abuse_recording.py
	$(BIN)/python bench/abuse_disk.py
	$(BIN)/python bench/abuse_fastpath.py

# The realism probe suite: real daemons against dynapot's imitation of them, one line per probe.
realism: setup
	$(BIN)/python bench/realism_probes.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
