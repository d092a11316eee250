"""Push notifications: the durable outbox, priorities, alarms and roost's own alerts."""
