import random
import time

import transaction
from ZODB.POSException import ConflictError

from ..resources import app_root


def retrying(manager, work, attempts=5):
    """Run `work()` in a transaction of `manager` and commit it, again on a
    write conflict (another thread or a request changed the same objects).
    Unlike `manager.attempts()`, a failed commit is never mistaken for a
    result."""
    for attempt in range(1, attempts + 1):
        manager.begin()
        try:
            result = work()
            manager.commit()
            return result
        except ConflictError:
            manager.abort()
            if attempt == attempts:
                raise
            time.sleep(random.uniform(0.005, 0.05) * min(attempt, 20))
        except BaseException:
            manager.abort()
            raise


def in_own_transaction(db, work, attempts=5):
    """`work(root)` committed in a transaction of a connection of its own,
    retried on conflicts; its result."""
    manager = transaction.TransactionManager()
    connection = db.open(transaction_manager=manager)
    try:
        return retrying(manager, lambda: work(app_root(connection)), attempts=attempts)
    finally:
        connection.close()
