"""The webhook inbox: notifications stored by the receiver, turned into incremental runs."""
