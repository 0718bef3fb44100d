"""A settings change from the page or the API: written here, or handed to the daemon; audited.

Standalone `dynapot web` writes the settings file itself (`settings_store.update_settings`) and
writes the audit log's rows. The web child of `dynapot run` (`settings_by_daemon`) may only read
the file: it hands the change to the daemon (`daemon.settings_requests`), which validates it
against the same editable settings, writes the file as root and audits it, and waits for the
answer. Either way the caller gets the changes made, or SettingsRefused with each field's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynapot.daemon import settings_requests
from dynapot.daemon.settings_store import Change, SettingsRefused, update_settings
from dynapot.web.accounts import audit
from dynapot.web.context import WebContext

__all__ = ["change_settings"]


def change_settings(web: WebContext, submitted: Mapping[str, Any], actor: str) -> list[Change]:
    """Apply the admin's change (dotted setting -> value); the changes made, audited."""
    if web.settings_path is None:
        raise SettingsRefused({"settings": "started without --config: there is no settings file"})
    if web.settings_by_daemon:
        return settings_requests.answer(web.db, settings_requests.submit(web.db, submitted, actor))
    made = update_settings(web.settings_path, submitted)
    for change in made:
        audit(web.db, actor, "setting.change", change.dotted, change.old, change.new)
    return made
