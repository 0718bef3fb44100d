"""What happens to events after they are stored: correlation, findings, alerts, reports.

- `correlate`: the rules (scan, brute force, worm) that turn events into findings,
  incrementally and within bounded memory; no database.
- `findings`: the `Finding` record and the findings table (upsert by key, ids by key).
- `stored`: reading stored events for the correlator, by time range or after an id.
- `alerts`: findings at or above a risk sent through apprise, deduplicated, rate-limited,
  retried, each one a row of the alerts table written off the event loop.
- `report`: reports over a time range, in text, JSON, CSV or HTML.

It reads events through the catalogue (`dynapot.events`) and imports nothing of dynapot but
`config`, `db` and `events`: the daemon and the command line build on it, never the reverse.
"""
