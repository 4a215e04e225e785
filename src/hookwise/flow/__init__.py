"""Flow control while hookwise runs: the keys a matching event renders, and the gates.

The blocks themselves (what a rule author writes) are in `hookwise.rules.flow`; the
store applies debounce, throttle, concurrency and waiting in the transaction that
accepts an event, so they hold across processes.

- `keys`: when an event matches, each block's key is rendered into the new run;
- `gates`: before a claimed run's actions, its awaited event and its approval.
"""
