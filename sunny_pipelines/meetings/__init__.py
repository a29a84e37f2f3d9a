"""Meetings: Attendee recording bots for the meetings users want recorded, their states and transcripts."""
