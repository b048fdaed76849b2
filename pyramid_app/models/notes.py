"""What a transaction tells once it has committed: its log lines of state
changes, and what happened that other threads wait for (a run queued, jobs
wanting placing, an agent's jobs changed). Models note them here; runner/
registers the listeners that wake its threads, so models know nothing of
who waits. A transaction that aborts or is retried after a conflict tells
nothing: a line is logged once, for the change that was stored.

An object not stored under anything in a database (a unit test's) has no
transaction to wait for: its notes are told at once."""
import logging

RUN_QUEUED = "run queued"  # the runner threads look for a run to claim
SCHEDULING_WANTED = "scheduling wanted"  # the scheduler places a cluster's jobs, applies their reports
AGENT_JOBS_CHANGED = "agent jobs changed"  # jobs were placed on or taken from pulling agents: their polls look
HAPPENINGS = (RUN_QUEUED, SCHEDULING_WANTED, AGENT_JOBS_CHANGED)

# Called with the set of HAPPENINGS of each transaction that committed with
# any (runner/signals.py registers its dispatcher's).
COMMIT_LISTENERS = []

_DATA_KEY = object()  # the notes' key in a transaction's data


class _Notes:
    def __init__(self):
        self.lines = []  # (logger, message, args), formatted only once committed
        self.happened = set()

    def committed(self, succeeded):
        if not succeeded:
            return
        for logger, message, args in self.lines:
            logger.info(message, *args)
        if self.happened:
            for listener in list(COMMIT_LISTENERS):
                listener(self.happened)


def _jar(anchor):
    node = anchor
    while node is not None and getattr(node, "_p_jar", None) is None:
        node = getattr(node, "__parent__", None)
    return None if node is None else node._p_jar


def _notes(anchor):
    """The notes of the transaction changing `anchor` (a stored object, or
    one being added under one), made on first use; None when it is stored
    nowhere."""
    jar = _jar(anchor)
    if jar is None:
        return None
    txn = jar.transaction_manager.get()
    try:
        return txn.data(_DATA_KEY)
    except KeyError:
        notes = _Notes()
        txn.set_data(_DATA_KEY, notes)
        txn.addAfterCommitHook(notes.committed)
        return notes


def log_change(anchor, logger, message, *args):
    """Log `message % args` at INFO once the transaction changing `anchor`
    has committed."""
    if not logger.isEnabledFor(logging.INFO):
        return
    notes = _notes(anchor)
    if notes is None:
        logger.info(message, *args)
    else:
        notes.lines.append((logger, message, args))


def happened(anchor, what):
    """Tell the listeners that `what` (one of HAPPENINGS) happened once the
    transaction changing `anchor` has committed."""
    notes = _notes(anchor)
    if notes is None:
        for listener in list(COMMIT_LISTENERS):
            listener({what})
    else:
        notes.happened.add(what)


def after_commit(stored, action):
    """Call `action()` once the transaction changing `stored` has committed."""
    stored._p_jar.transaction_manager.get().addAfterCommitHook(lambda committed: committed and action())
