"""Local emulator of the external services Sunny talks to (Google OAuth, Calendar v3, Drive v3 and
Gmail v1, Attendee's bots API, an OpenAI-compatible API at `/v1`).

One server (`server.SandboxServer`: Starlette routing served by uvicorn from a background thread)
serves many users at once from an in-memory `world.World`. The real google-api-python-client and
google-auth work against it unchanged apart from the endpoint (`api_endpoint=BASE + "/calendar/v3/"`,
`BASE + "/drive/v3/"`, plain `BASE` for Gmail; `token_uri=BASE + "/token"`). Media uploads go to
`BASE + "/upload/..."`, but the client keeps the discovery document's `https` scheme for them: a
test client maps them back to `http` (`sunny_pipelines_tests.google_clients`).

Layout:

    core/       app (HTTP routing, Google API auth + faults + counters, control endpoints), server,
                clock, accounts (users and grants), faults, counters, channels + notifications
                (push channel registry and delivery), change_feed (the one sync-token helper),
                signing (Pub/Sub OIDC tokens, Attendee signatures), pubsub (push subscriptions),
                plugin (service registration)
    services/   one module per emulated service, each registering a `core.plugin.ServicePlugin`:
                google_oauth (/token, /revoke, /tokeninfo, userinfo, certs), calendar/ (store, api,
                recurrence, seed), drive/, gmail/, attendee/ (bots on the sandbox clock, transcripts,
                signed webhooks), openai/ (`/v1/models`, `/v1/chat/completions` with deterministic,
                content-aware Structured Outputs answers; `OpenAI(base_url=BASE + "/v1")`)
    world.py    the world: the core pieces plus one instance of each service, and the Python API
                tests use (`list_users`, `calendar_truth`, `inject_fault`, ...)
    seed.py     the generated world: people, then each service's `seed` from the same random stream
    connect.py  `connect-users`: writes the users' grants to the app database

Control endpoints, for tests and for processes other than the one running the sandbox:

    GET  /healthz                     200 {"status": "ok"}
    GET  /sandbox/users               users with a currently valid access token and refresh token
    POST /sandbox/users               {"email", "name"?, "timezone"?} adds a user
    POST /sandbox/users/reconnect     {"email"}: a new grant after a revoke (the user consents again)
    POST /sandbox/faults              {"kind", "user_email"?, "count"?, "latency_ms"?, "status"?}
    DELETE /sandbox/faults            clears queued faults
    POST /sandbox/notifications       {"drop_rate": 0.1}
    GET  /sandbox/notifications       {"delivered": [...], "dropped": n}
    GET  /sandbox/<service>/truth     ?email=... -> World.truth(service, email); calendar: calendar_truth
    GET  /sandbox/requests            ?email=&path_prefix= -> {"count": n}; DELETE resets the counters
    POST /sandbox/clock               {"advance_seconds": n}: tokens and channels expire sooner
    GET  /oauth2/v1/certs             {kid: PEM certificate} for the Pub/Sub push tokens
    POST /sandbox/pubsub/push         {"endpoint", "audience"?, "data", "attributes"?} -> {"status"}
    POST /sandbox/attendee/emit       {"url", "secret", "payload"} -> {"status"}
    POST /sandbox/pubsub/subscriptions {"topic", "push_endpoint", "audience"?, "name"?} -> 201 the
                                      subscription: what a Gmail watch publishes to the topic is
                                      pushed, signed for the audience (default: the endpoint)
    GET  /sandbox/pubsub/subscriptions ?topic= -> {"subscriptions", "delivered", "dropped"}
    GET  /sandbox/attendee/bots       every Attendee bot (World.attendee_bots)
    POST /sandbox/attendee/bots/<id>/end   the meeting ends now (the bot leaves, then ends)
    POST /sandbox/attendee/bots/<id>/fail  {"reason"?}: the bot ends in fatal_error
    POST /sandbox/attendee/webhooks   {"url", "triggers"?} -> 201: a project-level Attendee webhook
    GET  /sandbox/attendee/webhooks   {"subscriptions", "delivered", "dropped"}
    GET  /sandbox/openai/requests     {"count", "requests"}: the chat completions received
    POST /sandbox/openai/models/<id>/remove   the model leaves /v1/models (completions: 404)
    POST /sandbox/openai/models/<id>/restore  serves it again

Start it with `python -m sunny_pipelines.sandbox --port 8765 --users 3` (add
`--pubsub-subscription projects/P/topics/T=ENDPOINT[,AUDIENCE]` for Gmail pushes, and
`--attendee-webhook URL --attendee-webhook-secret B64 --attendee-api-key KEY` for Attendee,
`--openai-api-key KEY` for OpenAI).
"""
