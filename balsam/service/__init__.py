"""The metascheduler: submits launcher allocations to a batch scheduler."""
