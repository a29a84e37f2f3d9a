"""The emulated services, one module (or package) each. Every module here is imported by
`core.plugin.registered_services()` and registers its `ServicePlugin` with `@register_service`:
adding a service (Drive, Gmail, Attendee, OpenAI) is adding a module here."""
