"""Local emulator of the external services Sunny talks to (Google OAuth + Calendar v3 so far).

One threaded HTTP server (`server.SandboxServer`) serves many users at once from an in-memory
`world.World`. The real google-api-python-client and google-auth work against it unchanged apart from
the endpoint (`api_endpoint=BASE + "/calendar/v3/"`, `token_uri=BASE + "/token"`).

Modules: `world` (state, faults, counters, channels), `seed` (the generated world), `google_oauth`
(/token, /revoke, /tokeninfo), `calendar_store` + `calendar_api` (Calendar v3), `recurrence`,
`notifications` (channel deliveries), `push` (Pub/Sub and Attendee signed pushes), `server`.

Control endpoints, for tests and for processes other than the one running the sandbox:

    GET  /healthz                     200 {"status": "ok"}
    GET  /sandbox/users               users with a currently valid access token and refresh token
    POST /sandbox/users               {"email", "name"?, "timezone"?} adds a user
    POST /sandbox/users/reconnect     {"email"}: a new grant after a revoke (the user consents again)
    POST /sandbox/faults              {"kind", "user_email"?, "count"?, "latency_ms"?, "status"?}
    DELETE /sandbox/faults            clears queued faults
    POST /sandbox/notifications       {"drop_rate": 0.1}
    GET  /sandbox/notifications       {"delivered": [...], "dropped": n}
    GET  /sandbox/calendar/truth      ?email=... -> World.calendar_truth
    GET  /sandbox/requests            ?email=&path_prefix= -> {"count": n}; DELETE resets the counters
    POST /sandbox/clock               {"advance_seconds": n}: tokens and channels expire sooner
    GET  /oauth2/v1/certs             {kid: PEM certificate} for the Pub/Sub push tokens
    POST /sandbox/pubsub/push         {"endpoint", "audience"?, "data", "attributes"?} -> {"status"}
    POST /sandbox/attendee/emit       {"url", "secret", "payload"} -> {"status"}

Start it with `python -m sunny_pipelines.sandbox --port 8765 --users 3`.
"""
