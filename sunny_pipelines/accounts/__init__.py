"""Accounts: users, their Google grants and sessions, and the `users` partitions."""
