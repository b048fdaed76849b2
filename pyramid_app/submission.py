"""What an active cluster refuses of the jobs submitted to it, once each job
is valid on its own (schemas/jobs.py): deps it does not have, files its
project has not uploaded or that take the wrapper's places, and jobs none of
its nodes can ever hold (a pinned node it does not have, more cpus or memory
than its largest node). Jobs are taken only by an active cluster, whose
nodes are known from its inventory; one refused job refuses the request."""
from .errors import Conflict, ValidationFailed, detail, problems_text
from .units import size_to_bytes
from .uploads import placement_problems, upload_name

MIB = 1024 * 1024


def check_jobs(cluster, specs, many):
    """ValidationFailed naming every problem of `specs` (an item's fields as
    [index].field when `many`), or the normal names of their files set."""
    if not cluster.node_resources:
        raise Conflict(f"Cluster {cluster.name!r} has no nodes (no host in its inventory's nodes group), so no job "
                       "can run on it.", code="NoNodes")
    uploads = UploadChecks(cluster.project.uploads, cluster.project.name)
    earlier, problems = set(), []  # names given earlier in this body; the cluster's own are looked up one by one
    for index, spec in enumerate(specs):
        prefix = f"[{index}]." if many else ""
        for dep in spec["deps"]:
            if dep not in earlier and dep not in cluster.jobs:
                problems.append(detail("body", f"{prefix}deps", f"no job {dep!r} in the cluster or earlier in the "
                                                                "array: name a job submitted before this one"))
        spec["files"] = uploads.normal_names(spec["files"], f"{prefix}files", problems)
        problems += [detail("body", prefix + field, problem)
                     for field, problem in placement_problems(spec["files"], spec["cwd"])]
        problems += fit_problems(spec, cluster.node_resources, prefix)
        if spec["name"] is not None:
            earlier.add(spec["name"])
    if problems:
        raise ValidationFailed(f"Nothing was accepted: {problems_text(problems)}.", problems)


def _memory_text(mb):
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def fit_problems(spec, nodes, prefix=""):
    """Why no node of `nodes` (a cluster's node_resources) can ever run the
    job `spec`: the scheduler's own test (cpus and memory, in MB, at most a
    node's), on its pinned node or on any."""
    pinned = spec["node"]
    if pinned is not None and pinned not in nodes:
        return [detail("body", f"{prefix}node", f"no node {pinned!r} in the cluster; its nodes are "
                                                f"{', '.join(sorted(nodes))}")]
    candidates = {pinned: nodes[pinned]} if pinned is not None else nodes
    cpus, memory_mb = spec["cpus"], size_to_bytes(spec["memory"]) // MIB
    if any(node["cpus"] >= cpus and node["memory_mb"] >= memory_mb for node in candidates.values()):
        return []
    where = f"node {pinned}" if pinned is not None else "the largest node of the cluster"
    most_cpus = max(node["cpus"] for node in candidates.values())
    most_memory = max(node["memory_mb"] for node in candidates.values())
    problems = []
    if cpus > most_cpus:
        problems.append(detail("body", f"{prefix}cpus", f"{cpus} cpus are more than {where} has ({most_cpus}): "
                                                        f"ask for at most {most_cpus}, or scale the nodes up"))
    if memory_mb > most_memory:
        problems.append(detail("body", f"{prefix}memory",
                               f"{spec['memory']} is more memory than {where} has ({_memory_text(most_memory)}): "
                               f"ask for at most {_memory_text(most_memory)}, or scale the nodes up"))
    if not problems:  # each fits some node, none both
        problems.append(detail("body", f"{prefix}cpus", f"no node has both {cpus} cpus and {spec['memory']} of "
                                                        "memory: ask for less of one"))
    return problems


class UploadChecks:
    """Jobs' `files` checked against their project's uploads (no other
    project's, nor the global ones), each name once per request however
    many jobs name it."""

    def __init__(self, uploads, project):
        self.uploads = uploads
        self.project = project  # its name, for the messages
        self.checked = {}  # name -> (normal name, problem or None)

    def normal_names(self, files, location, problems):
        """The normal forms of `files`, each once; a problem for a name that
        leaves the upload directory or names no uploaded file."""
        names = []
        for index, name in enumerate(files):
            if name not in self.checked:
                self.checked[name] = self._check(name)
            normal, problem = self.checked[name]
            if problem is not None:
                problems.append(detail("body", f"{location}[{index}]", problem))
            elif normal not in names:
                names.append(normal)
        return names

    def _check(self, name):
        try:
            normal = upload_name(name)
        except ValidationFailed as invalid:
            return None, invalid.details[0]["description"]
        if normal not in self.uploads:
            return None, (f"no upload {name!r} in project {self.project!r}: "
                          f"PUT /v1/projects/{self.project}/uploads?path=...")
        return normal, None
