"""The admin web interface (`dynapot web`): accounts, a JSON API and server-rendered pages.

`accounts` keeps users, API tokens, browser sessions and the audit log; `settings_store`
changes the settings file the daemon reads; `app` builds the FastAPI application (pages,
/api/v1, security headers, CSRF); `tls` makes the self-signed certificate; `server` runs it
under uvicorn.
"""
