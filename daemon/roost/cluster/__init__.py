"""A fleet of roost workers sharing one PostgreSQL: ownership of account groups by advisory
locks, epoch fencing of every outbox and command write, and fleet commands."""
