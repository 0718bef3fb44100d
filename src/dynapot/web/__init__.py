"""The admin web interface (`dynapot web`): accounts, a JSON API and server-rendered pages.

`accounts` keeps users, API tokens, browser sessions and the audit log; `settings_change`
changes the settings file the daemon reads (itself, or through the daemon: `dynapot.daemon`);
`app` builds the FastAPI application (pages, /api/v1, security headers, CSRF); `tls` makes the
self-signed certificate; `server` runs it under uvicorn.
"""
