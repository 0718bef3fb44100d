"""The sensor's own files once it runs unprivileged: folders made for its user, never taken over.

As root (CI runs the suite as root): a missing folder is made and given to the sensor's user;
an existing one keeps its owner and mode whoever owns it, and a status file in a folder the user
may not write is opened before root is dropped and rewritten in place.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess

import pytest

from dynapot.processes import python_command
from dynapot.sensor.main import StatusFile, _prepare_dir
from dynapot.sensor.privileges import PrivilegeError, user_entry

root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (ownership)")
USER = "nobody"  # present everywhere; the sensor's own account is the set-up's business


@root
def test_a_missing_folder_is_made_for_the_user(tmp_path):
    folder = tmp_path / "a" / "uploads"
    assert _prepare_dir(folder, USER, mode=0o700)
    info = folder.stat()
    assert info.st_uid == pwd.getpwnam(USER).pw_uid and info.st_mode & 0o777 == 0o700
    assert folder.parent.stat().st_uid == 0  # the folders above are root's


@root
@pytest.mark.parametrize("mode", [0o755, 0o1777, 0o700])
def test_an_existing_folder_keeps_its_owner_and_mode(tmp_path, mode):
    folder = tmp_path / "existing"
    folder.mkdir()
    folder.chmod(mode)
    before = folder.stat()
    writable = _prepare_dir(folder, USER)
    after = folder.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid, before.st_mode)
    assert writable is (mode == 0o1777)


@root
def test_a_status_file_in_a_folder_the_user_may_not_write(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o755)
    status = StatusFile(folder / "status.json", replace=_prepare_dir(folder, USER))
    assert status.fd is not None
    # As the unprivileged user (a child that drops root the way the sensor does), the status is
    # still written, through the descriptor opened while root.
    code = (
        "import os, sys; os.setgroups([]); os.setgid(65534); os.setuid(65534);"
        "fd = int(sys.argv[1]); data = b'{\"pid\": 7}'; os.pwrite(fd, data, 0); os.ftruncate(fd, len(data))"
    )
    subprocess.run(python_command("-c", code, str(status.fd)), check=True, pass_fds=(status.fd,), timeout=30)
    status.write(json.dumps({"pid": 8, "hosts": 2}))
    assert json.loads((folder / "status.json").read_text()) == {"pid": 8, "hosts": 2}
    status.write(json.dumps({"pid": 9}))  # shorter: the rest of the old text is cut
    assert json.loads((folder / "status.json").read_text()) == {"pid": 9}
    assert folder.stat().st_uid == 0 and folder.stat().st_mode & 0o777 == 0o755


def test_a_status_file_is_replaced_whole_where_it_may_be(tmp_path):
    status = StatusFile(tmp_path / "status.json")
    status.write("{}")
    status.write('{"pid": 1}')
    assert json.loads((tmp_path / "status.json").read_text()) == {"pid": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["status.json"]


@root
def test_a_missing_user_is_said_before_anything_is_opened():
    with pytest.raises(PrivilegeError, match="make setup"):
        user_entry("dynapot-no-such-user")


@root
def test_the_sensor_command_names_a_missing_user_and_opens_nothing(tmp_path):
    from click.testing import CliRunner

    from dynapot.cli import main

    config = tmp_path / "honeyd.conf"
    config.write_text('create t\nset t personality "Linux 5.4"\nbind 198.18.0.100 t\n')
    args = ["sensor", "-i", "lo", "--config", str(config), "--no-db", "--user", "dynapot-no-such-user"]
    result = CliRunner().invoke(main, args, env={"DYNAPOT_DB": None, "DYNAPOT_CONFIG": None})
    assert result.exit_code == 2, result.output
    assert "--user dynapot-no-such-user: no such user" in result.output and "make setup" in result.output


def test_the_sensor_drops_root_to_its_own_account_by_default():
    from dynapot.cli.sensor import sensor_command
    from dynapot.config import DaemonSettings

    user = next(p for p in sensor_command.params if p.name == "user")
    assert user.default == "dynapot" and DaemonSettings().sensor_user == "dynapot"
