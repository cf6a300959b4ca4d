"""The job server: message intake, scheduler, executors and processing stages.

It writes the DQM database through ``dqm.db`` and never imports ``app``.
"""
