"""Real daemons for the realism probe suite, run in a lab host in the foreground.

Each builder writes a throwaway configuration (and data directory) under the host's private
lab directory and returns the command that runs the daemon in the foreground on its usual port,
configured as Debian ships it where that matters to what a client sees (sshd with PAM and
password logins, Apache's "ServerTokens OS", Postfix's default smtpd). `register()` adds them to
`dynapot.lab.network.SERVICES` under their own names, so a `HostSpec` lists them like "ssh":

    ssh-debian  OpenSSH as Debian configures it (UsePAM, password logins, no keyboard-interactive)
    ftp-debian  vsftpd as Debian configures it (local users, no anonymous login)
    telnet      BusyBox telnetd (busybox-static)
    smtp        Postfix's master and smtpd
    apache      Apache httpd, port 80
    nginx       nginx, port 8080
    mysql       MariaDB, port 3306
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

from dynapot.lab.network import CMD_TIMEOUT, SERVICES, SSHD, LabError, ServiceCommand

__all__ = ["NGINX_PORT", "register"]

NGINX_PORT = 8080
_TIMEOUT = 120.0  # mariadb-install-db on a busy machine


def _check(argv: list[str], timeout: float = CMD_TIMEOUT) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"{argv[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed: {(proc.stderr or proc.stdout).strip()[-500:]}")


def _ssh_debian(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    keydir = workdir / "sshd"
    keydir.mkdir(mode=0o700, exist_ok=True)
    keys = []
    # OpenSSH's defaults: RSA 3072, ECDSA P-256, Ed25519 (as `ssh-keygen -A` makes them).
    for kind in ("rsa", "ecdsa", "ed25519"):
        key = keydir / f"ssh_host_{kind}_key"
        if not key.exists():
            _check(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"root@{name}", "-f", str(key)])
        keys.append(key)
    config = keydir / "sshd_config"
    lines = [
        "Port 22",
        f"ListenAddress {ip}",
        *(f"HostKey {key}" for key in keys),
        "PidFile none",
        # Debian's /etc/ssh/sshd_config, less what a lab has no use for.
        "KbdInteractiveAuthentication no",
        "UsePAM yes",
        "X11Forwarding yes",
        "PrintMotd no",
        "AcceptEnv LANG LC_*",
        "Subsystem sftp /usr/lib/openssh/sftp-server",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    return ServiceCommand([SSHD, "-D", "-e", "-f", str(config)], 22)


def _ftp_debian(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    """vsftpd with Debian's /etc/vsftpd.conf (local users, no anonymous), standalone on IPv4."""
    Path("/var/run/vsftpd/empty").mkdir(mode=0o755, parents=True, exist_ok=True)
    config = workdir / "vsftpd-debian.conf"
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        f"listen_address={ip}",
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "dirmessage_enable=YES",
        "use_localtime=YES",
        "xferlog_enable=YES",
        f"xferlog_file={workdir}/vsftpd.xferlog",
        "connect_from_port_20=YES",
        "secure_chroot_dir=/var/run/vsftpd/empty",
        "pam_service_name=vsftpd",
        "ssl_enable=NO",
    ]
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    return ServiceCommand(["/usr/sbin/vsftpd", str(config)], 21)


def _telnet(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    busybox = shutil.which("busybox") or "busybox"
    return ServiceCommand([busybox, "telnetd", "-F", "-p", "23", "-b", str(ip), "-l", "/bin/login"], 23)


def _smtp(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    conf = workdir / "postfix"
    spool = workdir / "postfix-spool"
    data = workdir / "postfix-data"
    conf.mkdir(mode=0o755, exist_ok=True)
    for folder in (spool, data):
        folder.mkdir(mode=0o755, exist_ok=True)
    shutil.copy("/etc/postfix/master.cf.proto", conf / "master.cf")
    shutil.chown(data, "postfix", "postfix")
    main = [
        # What Debian's postinst writes for an "Internet site", less TLS certificates.
        "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)",
        "biff = no",
        "append_dot_mydomain = no",
        "readme_directory = no",
        "compatibility_level = 3.6",
        "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
        f"myhostname = {name}",
        "alias_maps =",
        "alias_database =",
        "myorigin = $myhostname",
        f"mydestination = $myhostname, {name}.localdomain, localhost",
        "relayhost =",
        "mynetworks = 127.0.0.0/8",
        "mailbox_size_limit = 0",
        "recipient_delimiter = +",
        "inet_interfaces = all",  # the host namespace has only lo and eth0; checked from outside it
        "inet_protocols = ipv4",
        f"queue_directory = {spool}",
        f"data_directory = {data}",
        "maillog_file = /dev/stdout",
    ]
    (conf / "main.cf").write_text("\n".join(main) + "\n")
    # postfix check makes the queue's folders with their owners; master.cf starts postlogd for stdout.
    _check(["postfix", "-c", str(conf), "check"])
    return ServiceCommand(["postfix", "-c", str(conf), "start-fg"], 25)


def _apache(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    run = workdir / "apache"
    root = run / "www"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    if Path("/var/www/html/index.html").exists():
        shutil.copy("/var/www/html/index.html", root / "index.html")  # Debian's "It works!" page
    else:
        (root / "index.html").write_text("<html><body><h1>It works!</h1></body></html>\n")
    config = run / "apache2.conf"
    lines = [
        "ServerRoot /etc/apache2",
        f"ServerName {name}",
        f"PidFile {run}/apache2.pid",
        f"DefaultRuntimeDir {run}",
        f"Mutex file:{run} default",
        "User www-data",
        "Group www-data",
        "Timeout 300",
        "KeepAlive On",
        "MaxKeepAliveRequests 100",
        "KeepAliveTimeout 5",
        "HostnameLookups Off",
        "ErrorLog /dev/stderr",
        "LogLevel warn",
        "IncludeOptional mods-enabled/*.load",
        "IncludeOptional mods-enabled/*.conf",
        f"Listen {ip}:80",
        "AccessFileName .htaccess",
        '<FilesMatch "^\\.ht">',
        "    Require all denied",
        "</FilesMatch>",
        "IncludeOptional conf-enabled/*.conf",
        "<Directory />",
        "    Options FollowSymLinks",
        "    AllowOverride None",
        "    Require all denied",
        "</Directory>",
        f"<Directory {root}>",
        "    Options Indexes FollowSymLinks",
        "    AllowOverride None",
        "    Require all granted",
        "</Directory>",
        f"<VirtualHost {ip}:80>",
        f"    ServerName {name}",
        f"    DocumentRoot {root}",
        "</VirtualHost>",
    ]
    config.write_text("\n".join(lines) + "\n")
    env = [f"APACHE_LOG_DIR={run}", f"APACHE_RUN_DIR={run}", f"APACHE_LOCK_DIR={run}"]
    return ServiceCommand(["env", *env, "/usr/sbin/apache2", "-f", str(config), "-DFOREGROUND"], 80)


def _nginx(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    run = workdir / "nginx"
    root = run / "www"
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    page = Path("/usr/share/nginx/html/index.html")
    if page.exists():
        shutil.copy(page, root / "index.html")
    else:
        (root / "index.html").write_text("<html><body><h1>Welcome to nginx!</h1></body></html>\n")
    config = run / "nginx.conf"
    config.write_text(
        "user www-data;\nworker_processes 1;\n"
        f"pid {run}/nginx.pid;\nerror_log stderr;\ndaemon off;\n"
        "events { worker_connections 64; }\n"
        "http {\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n"
        "  sendfile on;\n  keepalive_timeout 65;\n  access_log off;\n"
        f"  client_body_temp_path {run}/body;\n  proxy_temp_path {run}/proxy;\n"
        f"  fastcgi_temp_path {run}/fastcgi;\n  uwsgi_temp_path {run}/uwsgi;\n  scgi_temp_path {run}/scgi;\n"
        f"  server {{\n    listen {ip}:{NGINX_PORT} default_server;\n    root {root};\n"
        "    index index.html index.htm index.nginx-debian.html;\n    server_name _;\n"
        "    location / { try_files $uri $uri/ =404; }\n  }\n}\n"
    )
    return ServiceCommand(["/usr/sbin/nginx", "-c", str(config), "-e", "stderr"], NGINX_PORT)


def _mysql(name: str, ip: ipaddress.IPv4Address, workdir: Path) -> ServiceCommand:
    data = workdir / "mariadb"
    if not (data / "mysql").exists():
        data.mkdir(mode=0o750, exist_ok=True)
        shutil.chown(data, "mysql", "mysql")
        _check(
            ["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={data}", "--skip-test-db"],
            timeout=_TIMEOUT,
        )
    argv = ["/usr/sbin/mariadbd", "--no-defaults", "--user=mysql", f"--datadir={data}"]
    # Debian's /etc/mysql/mariadb.conf.d/50-server.cnf: the greeting's collation is utf8mb4's.
    argv += ["--character-set-server=utf8mb4", "--collation-server=utf8mb4_general_ci"]
    argv += [f"--bind-address={ip}", "--port=3306", f"--socket={data}/mysqld.sock"]
    # A user who may connect from anywhere, as on a server that is reachable at all (without
    # one, MariaDB answers any remote client "Host ... is not allowed to connect").
    init = workdir / "mariadb-init.sql"
    init.write_text("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'lab-only-app';\n")
    init.chmod(0o644)
    argv += [f"--pid-file={data}/mysqld.pid", "--skip-name-resolve", f"--init-file={init}"]
    return ServiceCommand(argv, 3306)


BUILDERS = {
    "ssh-debian": _ssh_debian,
    "ftp-debian": _ftp_debian,
    "telnet": _telnet,
    "smtp": _smtp,
    "apache": _apache,
    "nginx": _nginx,
    "mysql": _mysql,
}


def register() -> None:
    """Make the real daemons known to `lab_up` (idempotent)."""
    SERVICES.update(BUILDERS)
