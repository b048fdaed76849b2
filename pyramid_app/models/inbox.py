"""Reports of one node's jobs received and not yet applied (JobTable.
receive, apply_reports).

Report requests only add to an inbox and the scheduler only takes what it
read, so two transactions that changed one at the same time are merged
(`_p_resolveConflict`) instead of one being run again. A BTree could not
do that here: the scheduler empties it each time, and a bucket one
transaction empties conflicts with every insert of another (measured: a
third of the agents' report requests were retried)."""
from persistent import Persistent
from ZODB.POSException import ConflictError


class Inbox(Persistent):
    def __init__(self):
        self.reports = {}  # job name -> (attempt, report)

    def __len__(self):
        return len(self.reports)

    def put(self, name, attempt, report):
        """Keep the last report of a job, except that a "running" report
        never hides the same attempt's end (a request the agent gave up on
        may still commit after the one it sent next)."""
        kept = self.reports.get(name)
        if kept is not None and kept[0] == attempt and kept[1].get("state") != "running" \
                and report.get("state") == "running":
            return
        self.reports[name] = (attempt, report)
        self._p_changed = True

    def take(self):
        """[(name, (attempt, report))] in the order of their names, and the
        inbox empty."""
        taken = sorted(self.reports.items())
        if taken:
            self.reports = {}
        return taken

    def _p_resolveConflict(self, old, committed, new):
        """Both sides' puts, less what either took; a name both put anew
        (two requests reporting one job at once) conflicts."""
        before, theirs, ours = old["reports"], committed["reports"], new["reports"]
        merged = dict(theirs)
        for name, entry in ours.items():
            if before.get(name) != entry:  # put by us
                if name in theirs and theirs[name] != before.get(name) and theirs[name] != entry:
                    raise ConflictError(f"two reports of job {name} at once")
                merged[name] = entry
        for name, entry in before.items():
            if name not in ours and theirs.get(name) == entry:  # taken by us, not put again by them
                del merged[name]
        return dict(new, reports=merged)
