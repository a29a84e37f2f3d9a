"""Google Calendar: calendar lists, event sync (full and incremental), push channels."""
