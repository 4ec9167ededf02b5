"""The Slack app: listeners per surface (thin: ack, normalize, hand off), Block Kit rendering,
a paced Web API poster, and the HTTP / Socket Mode entry points.

Heavy work (triage, posting, re-indexing) runs on the runtime's bounded worker pool, never on
Bolt's listener threads.
"""
