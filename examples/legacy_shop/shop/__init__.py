"""A small legacy shop service, written the way many teams still write them.

It is the starting point of the migration walk-through (docs/migrating.md):
retry loops around HTTP calls, a jobs table with a status column polled by a
worker, a cron sweeper that requeues "stuck" jobs, and a failed_jobs table that
collects what ran out of attempts. Nothing here uses durable-toolkit.
"""
